"""Running ``andon serve`` as a real process on a free loopback port, for the tests that need
a real HTTP server (a browser, signals, exit codes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.subprocesses import LoggedProcess, popen_logged
from tests.support import wait_until

__all__ = ["Served", "free_port", "serve"]

START_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Served(LoggedProcess):
    """One ``andon serve`` process; its output goes to a log file (never a full pipe)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path, token: str | None) -> None:
        super().__init__(process, log, "andon serve")
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.token = token

    def request(
        self, method: str, path: str, body: object = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:  # Any: decoded JSON
        """One API call; returns the status and the decoded JSON body (``None`` if empty).

        ``headers`` are sent as given, in place of the server's own token.
        """
        data = None if body is None else json.dumps(body).encode()
        if headers is None:
            headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        if data is not None:
            headers = {"content-type": "application/json", **headers}
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def wait_job(
        self, job_id: str, done: Callable[[Any], bool], timeout: float, what: str = ""
    ) -> Any:  # Any: the decoded JobOut
        """Poll the job through the API (every read must answer 200) until ``done(job)``;
        returns the job as seen then. A timeout names ``what`` and the job as last seen."""
        seen: dict[str, Any] = {}

        def reached() -> bool:
            status, job = self.request("GET", f"/api/v1/jobs/{job_id}")
            assert status == 200, f"GET job {job_id}: {status} {job}"
            seen.update(job)
            return done(job)

        try:
            wait_until(reached, timeout, what or f"job {job_id}", interval=0.02)
        except AssertionError as error:
            raise AssertionError(f"{error}; last seen {seen}") from None
        return seen

    def wait_ready(self) -> None:
        def answers() -> bool:
            try:
                status, _ = self.request("GET", "/api/v1/info")
            except OSError:  # not listening yet
                return False
            return status in (200, 401)

        self.wait_until(answers, START_S, "andon serve to answer")


def serve_test_app(folder: Path, app: str, concurrency: int) -> Served:
    """``andon serve`` with a worker on ``app`` (``tests.acceptance.x_app:app``, importable
    from the repository's root) and a SQLite store in ``folder``."""
    root = str(Path(__file__).resolve().parents[2])
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, before]))
    try:
        store = f"sqlite:///{folder / 'andon.db'}"
        return serve(folder, "--db", store, "--app", app, "--concurrency", str(concurrency), "--shutdown-grace", "0.5")
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def serve(folder: Path, *args: str, token: str | None = None) -> Served:
    """Start ``andon serve ARGS`` on a free port and wait until it answers."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    env = dict(os.environ)
    env.pop("ANDON_TOKEN", None)
    if token:
        env["ANDON_TOKEN"] = token
    process = popen_logged([sys.executable, "-m", "andon.cli", "serve", "--port", str(port), *args], log, folder, env)
    served = Served(process, port, log, token)
    try:
        served.wait_ready()
    except BaseException:
        served.kill()
        raise
    return served
