"""Secrets never leak: a real ``andon serve`` (API + worker) runs with a server token, user
tokens and an ``ANDON_LLM_URL`` that carries keys; every log line (debug level, access log
on), every API answer and the database file are then searched for each secret."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import andon
from tests.acceptance.serving import serve

ROOT = "root-secret-" + "r" * 32
URL_PASSWORD = "urlpass-k3y-0123456789"
QUERY_KEY = "querykey-0123456789abc"
API_KEY = "apikey-0123456789abcdef"


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A model endpoint that refuses every request, so httpx raises with the URL in its message."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"error": "no"}'
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:  # Any: BaseHTTPRequestHandler's signature
        pass


@pytest.fixture
def model_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
def test_no_secret_reaches_logs_events_errors_or_the_database(
    tmp_path: Path, model_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "andon.db"
    with andon.SqliteStore(str(db)) as store:
        alice = andon.Client(store).create_token("alice", "user").token
    monkeypatch.setenv("ANDON_LLM_URL", f"http://llm:{URL_PASSWORD}@127.0.0.1:{model_port}/v1?key={QUERY_KEY}")
    monkeypatch.setenv("ANDON_LLM_API_KEY", API_KEY)
    monkeypatch.setenv("ANDON_LLM_MODEL", "test-model")
    served = serve(
        tmp_path,
        "--db",
        f"sqlite:///{db}",
        "--access-log",
        "--log-level",
        "debug",
        "--no-demo-jobs",
        "--shutdown-grace",
        "1",
        token=ROOT,
    )
    answers: list[str] = []
    try:
        served.token = alice
        status, job = served.request(
            "POST", "/api/v1/jobs", {"kind": "extract", "params": {"rows": ["one", "two"], "properties": ["name"]}}
        )
        assert status == 201, job
        job = served.wait_job(job["id"], lambda seen: seen["status"] in ("succeeded", "failed", "cancelled"), 30.0)
        for path in (
            f"/api/v1/jobs/{job['id']}",
            f"/api/v1/jobs/{job['id']}/events",
            f"/api/v1/jobs/{job['id']}/results",
            "/api/v1/jobs",
            "/api/v1/info",
        ):
            answers.append(json.dumps(served.request("GET", path)))
        served.token = ROOT
        answers.append(json.dumps(served.request("GET", "/api/v1/tokens")))
        for wrong in (ROOT + "x", alice[:-1], "Bearer " + alice):
            served.token = wrong
            answers.append(json.dumps(served.request("GET", "/api/v1/jobs")))
        served.token = alice
        answers.append(json.dumps(served.request("POST", "/api/v1/jobs", {"kind": "extract", "params": {}})))
    finally:
        assert served.stop() == 0
    results = json.loads(answers[2])[1]["items"]
    assert len(results) == 2
    assert all("HTTPStatusError" in item["data"]["error"] for item in results)
    assert "***" in results[0]["data"]["error"]  # the URL was named, with its key blanked out
    log = served.output()
    assert "HTTP Request: POST" in log
    assert "GET /api/v1/jobs" in log
    searched = {"logs": log, "API answers": "\n".join(answers), "database": _database_text(tmp_path)}
    for where, text in searched.items():
        for secret in (ROOT, alice, URL_PASSWORD, QUERY_KEY, API_KEY):
            assert secret not in text, f"a secret leaked into the {where}"


def _database_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.iterdir() if p.name.startswith("andon.db"))
