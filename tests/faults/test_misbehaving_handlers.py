"""Handlers that raise, hang, exit, crash, leak, burn CPU, hoard files or ignore SIGTERM.

Each ends in one clear terminal state whose error or cancel record names the cause, the
items emitted before the fault are kept, and the same worker then runs a healthy job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

import andon
from tests.faults.handlers import CPU_LIMIT_S, MEMORY_LIMIT_MIB, OPEN_FILES_LIMIT
from tests.faults.handlers import app as faults_app
from tests.faults.processes import job_processes
from tests.support import wait_until

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Expected:
    status: andon.JobStatus
    error_type: str | None = None
    message: str | None = None
    """A piece of the error message (or of the cancel's stop event)."""
    stop_method: andon.StopMethod | None = None
    reason: andon.CancelReason | None = None


FAILED = andon.JobStatus.FAILED
CANCELLED = andon.JobStatus.CANCELLED

CASES = {
    "raises": Expected(FAILED, "ValueError", "the handler broke on purpose"),
    "raises_in_process": Expected(FAILED, "ValueError", "the handler broke on purpose"),
    "hangs": Expected(
        CANCELLED, stop_method=andon.StopMethod.TERMINATED, reason=andon.CancelReason.TIMEOUT, message="timeout"
    ),
    "hangs_in_thread": Expected(
        CANCELLED, stop_method=andon.StopMethod.INJECTED, reason=andon.CancelReason.TIMEOUT, message="timeout"
    ),
    "exits": Expected(FAILED, "SystemExit", "the handler called sys.exit(3)"),
    "exits_hard": Expected(FAILED, "ProcessDied", "the handler's process exited with code 7"),
    "aborts": Expected(FAILED, "ProcessDied", "killed by SIGABRT"),
    "segfaults": Expected(FAILED, "ProcessDied", "killed by SIGSEGV"),
    "leaks": Expected(FAILED, "MemoryLimitExceeded", f"exceeded its memory limit of {MEMORY_LIMIT_MIB} MiB"),
    "burns_cpu": Expected(FAILED, "CpuLimitExceeded", f"exceeded its CPU limit of {CPU_LIMIT_S} s"),
    "burns_cpu_in_c": Expected(FAILED, "CpuLimitExceeded", f"exceeded its CPU limit of {CPU_LIMIT_S} s"),
    "opens_files": Expected(FAILED, "OpenFilesLimitExceeded", f"exceeded its limit of {OPEN_FILES_LIMIT} open files"),
    "ignores_sigterm": Expected(
        CANCELLED, stop_method=andon.StopMethod.KILLED, reason=andon.CancelReason.USER, message="stopped by: killed"
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(CASES))
def test_a_misbehaving_handler_ends_clearly_and_the_worker_goes_on(
    store: andon.SqliteStore, make_worker: Callable[..., andon.Worker], kind: str
) -> None:
    expected = CASES[kind]
    client = andon.Client(store, faults_app, actor="test")
    make_worker(faults_app, concurrency=1, shutdown_grace_s=0.5)
    job = client.submit(kind, {})
    wait_until(lambda: client.get(job.id).items_count >= 1, 20, f"{kind} to start and emit")
    if kind == "ignores_sigterm":
        client.cancel(job.id, message="stop, whatever it takes")

    done = client.wait_finished(job.id, timeout=20)
    events = client.events(job.id)
    history = " | ".join(f"{e.type} {e.reason or ''} {e.message or ''}" for e in events)
    assert done.status is expected.status, f"{kind}: {done.status.value}, {done.error}, {history}"
    assert done.items_count >= 1, "the items emitted before the fault were lost"
    if expected.error_type is not None:
        assert done.error is not None
        assert done.error.type == expected.error_type, done.error
        assert expected.message is not None
        assert expected.message in done.error.message, done.error.message
    if expected.stop_method is not None:
        assert done.cancel is not None
        assert done.cancel.stop_method is expected.stop_method, done.cancel
        assert done.cancel.reason is expected.reason, done.cancel
        assert done.cancel.stopped_at is not None
        assert done.cancel.stop_seconds is not None
        assert done.cancel.stop_seconds < 5.0, f"the stop took {done.cancel.stop_seconds:.1f} s"
        assert expected.message is not None
        assert expected.message in history, history

    wait_until(lambda: not job_processes(), 10, "the job's process to be gone")

    print(f"{kind}: {done.status.value}: {done.error.message if done.error else history}")
    healthy = client.submit("ok", {"n": 3})
    after = client.wait_finished(healthy.id, timeout=20)
    assert after.status is andon.JobStatus.SUCCEEDED, after
    assert after.result == {"n": 3}


@pytest.mark.timeout(60)
def test_limits_are_applied_in_the_child_only(
    store: andon.SqliteStore, make_worker: Callable[..., andon.Worker]
) -> None:
    import resource

    before = [resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE)]
    client = andon.Client(store, faults_app, actor="test")
    make_worker(faults_app, concurrency=1)
    job = client.submit("within_limits", {})
    done = client.wait_finished(job.id, timeout=20)
    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    assert done.result is not None
    assert done.result["memory"] == 512 * 1024 * 1024
    assert 30 <= done.result["cpu"] <= 31  # 30 s on top of what the fresh child had used
    assert done.result["files"] == 64
    after = [resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE)]
    assert after == before, "the worker's own limits changed"
