"""``ctx.run`` checks the exit code by default: a failed command fails the job (issue 13).

With ``check=False`` as the default, a quick-start job whose ``convert`` exited 1 on every
file ended ``succeeded 40/40`` having written nothing. Now a non-zero exit raises
``andon.CommandFailed``, whose message (the job's error) names the command, the exit code
and the end of the child's stderr; ``check=False`` gives the result back instead. Each
isolation is tried, because each builds its context and records a failure its own way.

The handlers are module-level functions so that the process runtime can import them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

import andon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

app = andon.App(default_grace=0.5)

FAILING = ["sh", "-c", "echo some output; echo 'first complaint' >&2; echo 'convert: no decode delegate' >&2; exit 3"]


def failing(ctx: andon.Context, capture: bool = True, check: bool | None = None) -> dict[str, Any]:
    """Run a command that exits 3; ``check=None`` leaves ctx.run's default in force."""
    options: dict[str, Any] = {"capture_output": capture, "text": True}
    if check is not None:
        options["check"] = check
    completed = ctx.run(FAILING, **options)
    return {"returncode": completed.returncode, "stdout": completed.stdout, "stderr": completed.stderr}


async def failing_async(ctx: andon.Context, capture: bool = True, check: bool | None = None) -> dict[str, Any]:
    return failing(ctx, capture, check)


def succeeding(ctx: andon.Context) -> dict[str, Any]:
    completed = ctx.run(["sh", "-c", "echo fine"], capture_output=True)
    return {"returncode": completed.returncode, "stdout": completed.stdout.decode()}


app.job("failing_thread", isolation="thread")(failing)
app.job("failing_process", isolation="process")(failing)
app.job("failing_async")(failing_async)
app.job("succeeding")(succeeding)

KINDS = ["failing_thread", "failing_async", "failing_process"]


@pytest.fixture
def client(store: andon.SqliteStore) -> andon.Client:
    return andon.Client(store, app, actor="test")


@pytest.fixture
def worker(make_worker: Callable[..., andon.Worker]) -> andon.Worker:
    return make_worker(app, concurrency=2)


def run_job(client: andon.Client, kind: str, params: dict[str, Any] | None = None) -> andon.Job:
    job = client.submit(kind, params or {})
    return client.wait_finished(job.id, timeout=30)


@pytest.mark.parametrize("kind", KINDS)
def test_a_non_zero_exit_fails_the_job_with_the_command_code_and_stderr(
    client: andon.Client, worker: andon.Worker, kind: str
) -> None:
    job = run_job(client, kind)
    assert job.status is andon.JobStatus.FAILED, job
    assert job.error is not None
    assert job.error.type == "CommandFailed"
    assert job.error.message.startswith("command `sh -c 'echo some output; ")
    tail = "exited with code 3; the end of its stderr:\nfirst complaint\nconvert: no decode delegate"
    assert tail in job.error.message
    assert "some output" not in job.error.message.partition("stderr:")[2], "stdout is not the error"
    assert "CommandFailed" in (job.error.traceback or "")


@pytest.mark.parametrize("kind", KINDS)
def test_an_uncaptured_stderr_is_named_as_such(client: andon.Client, worker: andon.Worker, kind: str) -> None:
    job = run_job(client, kind, {"capture": False})
    assert job.status is andon.JobStatus.FAILED, job
    assert job.error is not None
    assert "exited with code 3 (its stderr was not captured" in job.error.message


@pytest.mark.parametrize("kind", KINDS)
def test_check_false_gives_the_result_back(client: andon.Client, worker: andon.Worker, kind: str) -> None:
    job = run_job(client, kind, {"check": False})
    assert job.status is andon.JobStatus.SUCCEEDED, job
    assert job.result == {
        "returncode": 3,
        "stdout": "some output\n",
        "stderr": "first complaint\nconvert: no decode delegate\n",
    }


def test_a_zero_exit_still_succeeds(client: andon.Client, worker: andon.Worker) -> None:
    job = run_job(client, "succeeding")
    assert job.status is andon.JobStatus.SUCCEEDED, job
    assert job.result == {"returncode": 0, "stdout": "fine\n"}


def test_a_handler_may_catch_it_as_a_called_process_error() -> None:
    assert issubclass(andon.CommandFailed, subprocess.CalledProcessError)
