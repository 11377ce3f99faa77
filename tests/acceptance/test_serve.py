"""``andon serve`` as a real process: the loopback rule, the user's app, seeding example jobs
(``--examples`` only), the embedded worker, ``--no-worker``, and a graceful stop on
SIGTERM/SIGINT with a dashboard connected."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import andon
from andon.cli import cli
from andon.cli._http import is_loopback
from tests import support
from tests.acceptance.serving import Served, serve

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

WAIT_S = 15.0
Start = Callable[..., Served]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[Served] = []

    def start_one(*args: str, token: str | None = None) -> Served:
        served = serve(tmp_path, *args, token=token)
        started.append(served)
        return served

    yield start_one
    for served in started:
        served.kill()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_host_other_machines_can_reach_needs_a_token(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--db", f"sqlite:///{db_path}"], env={})
    assert result.exit_code == 1
    assert "needs a token" in result.stderr
    assert "ANDON_TOKEN" in result.stderr
    assert "Traceback" not in result.output


def test_a_port_in_use_is_one_error_line_and_exit_1(db_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(cli, ["serve", "--port", port, "--db", f"sqlite:///{db_path}", "--no-demo-jobs"])
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.output


def test_serve_examples_seeds_example_jobs_runs_them_and_stops_gracefully_on_sigterm(
    start: Start, db_path: Path
) -> None:
    served = start("--db", f"sqlite:///{db_path}", "--examples", "--shutdown-grace", "0.2")
    status, page = served.request("GET", "/api/v1/jobs")
    assert status == 200
    kinds = sorted(job["kind"] for job in page["items"])
    assert kinds == ["count", "count", "count", "count", "fail", "sleeper"]

    with andon.connect(f"sqlite:///{db_path}") as client:
        long_count = next(job.id for job in client.list_jobs().items if job.params.get("n") == 120)
        support.wait_until(lambda: client.get(long_count).status is andon.JobStatus.RUNNING, WAIT_S, "a running job")
        support.wait_until(
            lambda: {j.status for j in client.list_jobs().items} >= {andon.JobStatus.SUCCEEDED, andon.JobStatus.FAILED},
            WAIT_S,
            "jobs in every state",
        )

        # An open event stream (a dashboard) must not hold the shutdown up.
        with urllib.request.urlopen(f"{served.base_url}/api/v1/stream", timeout=10) as stream:
            assert b"event: hello" in b"".join(stream.readline() for _ in range(5))
            started = time.monotonic()
            assert served.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 5
            assert stream.read() is not None  # the server ended the stream; this returns
        requeued = client.get(long_count)
        assert requeued.status is andon.JobStatus.QUEUED
        assert client.events(long_count)[-1].reason == "shutdown"
    output = served.output()
    assert "queued 6 example jobs" in output
    assert "SIGTERM: stopping; running jobs get 0.2 s" in output
    assert "Traceback" not in output


def test_serve_with_no_worker_leaves_jobs_queued_and_seeds_nothing(start: Start, db_path: Path) -> None:
    served = start("--db", f"sqlite:///{db_path}", "--no-worker")
    status, info = served.request("GET", "/api/v1/info")
    assert (status, info["worker"]) == (200, None)
    assert served.request("GET", "/api/v1/jobs")[1]["items"] == []
    status, job = served.request("POST", "/api/v1/jobs", {"kind": "count", "params": {"n": 1}})
    assert status == 201
    time.sleep(0.3)
    assert served.request("GET", f"/api/v1/jobs/{job['id']}")[1]["status"] == "queued"
    assert served.stop(signal.SIGINT) == 0
    output = served.output()
    assert "give --app MODULE:ATTR or $ANDON_APP to serve yours" in output  # it serves the examples
    assert "example jobs" not in output
    assert "Traceback" not in output


def test_an_api_only_node_serves_the_users_kinds_and_queues_nothing(
    start: Start, tmp_path: Path, db_path: Path
) -> None:
    """Issue 13: on an empty database such a node queued six example jobs, offered the example
    kinds and could not retry a job of the user's kind ("unknown job kind")."""
    (tmp_path / "node_jobs.py").write_text(
        "import andon\n"
        "app = andon.App()\n"
        "@app.job('resize', description='Resize a photo.')\n"
        "def resize(ctx: andon.Context, path: str) -> None:\n"
        "    pass\n"
    )
    served = start("--db", f"sqlite:///{db_path}", "--no-worker", "--app", "node_jobs:app")
    assert served.request("GET", "/api/v1/jobs")[1]["items"] == []
    status, kinds = served.request("GET", "/api/v1/kinds")
    assert (status, [kind["kind"] for kind in kinds["items"]]) == (200, ["resize"])
    assert served.request("POST", "/api/v1/jobs", {"kind": "count"})[0] == 422

    status, job = served.request("POST", "/api/v1/jobs", {"kind": "resize", "params": {"path": "a.jpg"}})
    assert status == 201, job
    assert served.request("POST", f"/api/v1/jobs/{job['id']}/cancel")[0] == 200
    status, again = served.request("POST", f"/api/v1/jobs/{job['id']}/retry")
    assert status == 201, again
    assert (again["kind"], again["params"], again["retry_of"]) == ("resize", {"path": "a.jpg"}, job["id"])
    assert served.stop(signal.SIGINT) == 0
    output = served.output()
    assert "kinds resize" in output
    assert "example jobs" not in output


def test_examples_with_another_app_is_a_usage_error(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--examples", "--app", "jobs:app", "--db", f"sqlite:///{db_path}"])
    assert result.exit_code == 2
    assert "--examples serves the example kinds" in result.output
    assert "Traceback" not in result.output


def test_serve_with_a_token_demands_it(start: Start, db_path: Path) -> None:
    served = start("--db", f"sqlite:///{db_path}", "--no-demo-jobs", token="a-long-test-token")
    assert served.request("GET", "/api/v1/jobs")[0] == 200  # the helper sends the token
    served.token = "wrong"
    status, body = served.request("GET", "/api/v1/jobs")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert "token required" in served.output()
