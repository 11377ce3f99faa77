"""Contract tests, one per stop path: how each runtime's work actually ends on a cancel.

Every test drives a real worker against a real SQLite file and checks what the store says
at the end: the final status, ``cancel.stop_method``, ``cancel.reason`` and the partial
results that were kept. Where the promise is that something is *gone* (a thread's
``finally`` ran, a process or a whole process group no longer exists), the test looks at
the operating system itself (``/proc``), not only at andon's records.

The handlers are module-level functions of this module, so the process runtime can
import them in its child processes. Scenarios that need a fresh process (a forkserver not
started yet) or that could leave a hung worker behind run a worker in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import andon
from andon.examples import app as example_app
from tests import support
from tests.support import is_alive, proc_stat, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

# -- the app under test ----------------------------------------------------------------

app = andon.App(default_grace=0.3)


@app.job("checker")
def checker(ctx: andon.Context, n: int = 1_000_000) -> dict[str, int]:
    """Cooperative through ``ctx.check()`` alone: one item per step, a short C sleep between."""
    for i in range(n):
        ctx.check()
        ctx.emit({"i": i, "at": time.time()})
        time.sleep(0.002)
    return {"counted": n}


@app.job("count")
def count(ctx: andon.Context, n: int = 1_000_000, interval_s: float = 0.005) -> dict[str, int]:
    """Like ``andon.examples`` count: a ``ctx.sleep`` checkpoint, then an item, per step."""
    for i in range(n):
        ctx.sleep(interval_s)
        ctx.emit({"i": i, "at": time.time()})
    return {"counted": n}


@app.job("count_twice", retry=andon.Retry(max_attempts=2))
def count_twice(ctx: andon.Context, n: int = 1_000_000, interval_s: float = 0.005) -> dict[str, int]:
    """``count`` with a retry policy of two attempts."""
    for i in range(n):
        ctx.sleep(interval_s)
        ctx.emit({"i": i, "attempt": ctx.attempt})
    return {"counted": n}


@app.job("async_wait")
async def async_wait(ctx: andon.Context, seconds: float = 60.0) -> None:
    """Suspended at an ``await``: the task is cancelled there."""
    ctx.emit({"started": True})
    try:
        await asyncio.sleep(seconds)
    finally:
        ctx.emit({"finally": True})


@app.job("async_check")
async def async_check(ctx: andon.Context) -> None:
    """CPU work in an async handler that never awaits but calls ``ctx.check()``."""
    next_emit = 0.0
    i = 0
    while True:
        ctx.check()
        sum(range(200))
        if time.monotonic() >= next_emit:
            ctx.emit({"i": i})
            i += 1
            next_emit = time.monotonic() + 0.005


async_loops: list[asyncio.AbstractEventLoop] = []


@app.job("async_loop")
async def async_loop(ctx: andon.Context) -> None:
    """Hands the test the event loop it runs on."""
    async_loops.append(asyncio.get_running_loop())


@app.job("busy", grace=0.2)
def busy(ctx: andon.Context) -> None:
    """A pure-Python loop that never checks: only an injected ``Cancelled`` ends it."""
    ctx.emit({"started": True})
    try:
        spins = 0
        while True:
            spins += 1
    finally:
        ctx.emit({"finally": True})


@app.job("busy_async", grace=0.2)
async def busy_async(ctx: andon.Context) -> None:
    """``busy`` as an async handler: it blocks its event loop, so no task cancel can land."""
    ctx.emit({"started": True})
    try:
        spins = 0
        while True:
            spins += 1
    finally:
        ctx.emit({"finally": True})


@app.job("proc_sleep", isolation="process")
def proc_sleep(ctx: andon.Context, seconds: float = 60.0) -> None:
    """A process-isolated handler that waits in a checkpoint."""
    ctx.emit({"pid": os.getpid()})
    ctx.sleep(seconds)


@app.job("stubborn", isolation="process", grace=0.3)
def stubborn(ctx: andon.Context) -> None:
    """Ignores SIGTERM and never checks: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.emit({"pid": os.getpid()})
    while True:
        pass


@app.job("shell")
def shell(ctx: andon.Context) -> None:
    """Starts a shell with a background and a foreground child through ``ctx.popen``."""
    child = ctx.popen(["sh", "-c", "sleep 300 & sleep 300"])
    ctx.emit({"pid": child.pid, "handler_pid": os.getpid()})
    ctx.sleep(60)


app.job("shell_process", isolation="process")(shell)


@app.job("plain_child", isolation="process")
def plain_child(ctx: andon.Context, spin: bool = False) -> None:
    """Starts a child with plain ``subprocess.Popen`` (no andon help), then spins or waits."""
    child = subprocess.Popen(["sleep", "300"])
    ctx.emit({"pid": child.pid, "handler_pid": os.getpid()})
    if spin:
        while True:
            pass
    ctx.sleep(60)


late_emits: queue.Queue[tuple[str, BaseException]] = queue.Queue()


@app.job("late_emitter")
def late_emitter(ctx: andon.Context) -> None:
    """Leaves a helper thread emitting after the handler itself has stopped."""

    def keep_emitting() -> None:
        try:
            while True:
                ctx.emit({"from": "helper", "at": time.time()})
                time.sleep(0.001)
        except BaseException as exc:
            late_emits.put((ctx.job_id, exc))

    threading.Thread(target=keep_emitting, name="late-emitter", daemon=True).start()
    ctx.sleep(60)


@contextlib.contextmanager
def _marker(ctx: andon.Context, name: str) -> Iterator[str]:
    ctx.emit(f"{name} entered")
    try:
        yield name
    finally:
        ctx.emit(f"{name} exited")


@app.job("tidy")
def tidy(ctx: andon.Context) -> None:
    """Registers cleanups and a context manager, then waits to be cancelled."""
    ctx.on_cleanup(lambda: ctx.emit("cleanup 1"))
    ctx.enter(_marker(ctx, "manager 2"))
    ctx.on_cleanup(lambda: ctx.emit("cleanup 3"))
    ctx.emit("ready")
    ctx.sleep(60)


app.job("tidy_process", isolation="process")(tidy)


@app.job("tidy_async")
async def tidy_async(ctx: andon.Context) -> None:
    """``tidy`` for the async runtime."""
    ctx.on_cleanup(lambda: ctx.emit("cleanup 1"))
    ctx.enter(_marker(ctx, "manager 2"))
    ctx.on_cleanup(lambda: ctx.emit("cleanup 3"))
    ctx.emit("ready")
    await asyncio.sleep(60)


@app.job("flaky", retry=andon.Retry(max_attempts=3))
def flaky(ctx: andon.Context) -> None:
    """Emits one item, then fails, on every attempt."""
    ctx.emit({"attempt": ctx.attempt})
    raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")


# -- helpers ------------------------------------------------------------------------------

STOP_BOUND_S = 3.0
"""Generous: every stop path here is designed to end well under a second (grace included)."""


def wait_items(client: andon.Client, job_id: str, n: int = 1) -> list[andon.ResultItem]:
    """:func:`tests.support.wait_items` within this module's 10 s."""
    return support.wait_items(client, job_id, n, timeout=10.0)


def cancel_and_wait(client: andon.Client, job_id: str, timeout: float = 10.0) -> andon.Job:
    result = client.cancel(job_id, wait=True, timeout=timeout)
    assert result.outcome is andon.CancelOutcome.REQUESTED
    return result.job


def assert_stopped(
    job: andon.Job,
    method: andon.StopMethod,
    reason: andon.CancelReason = andon.CancelReason.USER,
    status: andon.JobStatus = andon.JobStatus.CANCELLED,
    bound_s: float = STOP_BOUND_S,
) -> andon.CancelInfo:
    assert job.status is status, job
    cancel = job.cancel
    assert cancel is not None
    assert cancel.stop_method is method, cancel
    assert cancel.reason is reason, cancel
    assert cancel.stopped_at is not None
    assert cancel.stop_seconds is not None
    assert cancel.stop_seconds < bound_s, f"the stop took {cancel.stop_seconds:.2f} s"
    return cancel


def assert_items_kept(client: andon.Client, job: andon.Job, at_least: int = 1) -> list[andon.ResultItem]:
    """The partial results are all there, in order, none emitted after the work stopped."""
    items = client.results(job.id)
    assert len(items) == job.items_count
    assert len(items) >= at_least
    assert [item.seq for item in items] == list(range(len(items)))
    if job.cancel is not None and job.cancel.stopped_at is not None:
        late = [item for item in items if item.at > job.cancel.stopped_at]
        assert not late, f"items emitted after the work stopped at {job.cancel.stopped_at}: {late}"
    return items


def group_members(pgrp: int) -> list[int]:
    """Live processes (zombies excluded) in process group ``pgrp``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(entry.name)
            if stat is not None and stat[2] == pgrp and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def assert_gone(pid: int, timeout: float = 5.0) -> None:
    """The process ended and was reaped (by whichever parent it had): the pid is free."""
    wait_until(lambda: proc_stat(pid) is None, timeout, f"process {pid} to be gone")


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def client(store: andon.SqliteStore) -> andon.Client:
    return andon.Client(store, app, actor="test")


@pytest.fixture
def worker(make_worker: Callable[..., andon.Worker]) -> andon.Worker:
    return make_worker(app, concurrency=2, shutdown_grace_s=0.2)


# -- cooperative ----------------------------------------------------------------------


def test_thread_cooperative_stops_at_check(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("checker")
    wait_items(client, job.id, 5)
    stopped = cancel_and_wait(client, job.id)
    cancel = assert_stopped(stopped, andon.StopMethod.COOPERATIVE)
    assert cancel.acknowledged_at is not None
    assert cancel.stopped_at is not None
    assert cancel.requested_at <= cancel.acknowledged_at <= cancel.stopped_at
    assert_items_kept(client, stopped, at_least=5)


def test_async_task_cancelled_at_its_await(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("async_wait")
    wait_items(client, job.id)
    stopped = cancel_and_wait(client, job.id)
    assert_stopped(stopped, andon.StopMethod.ASYNC)
    items = assert_items_kept(client, stopped, at_least=2)
    assert [item.data for item in items] == [{"started": True}, {"finally": True}]


def test_async_handler_stops_at_check(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("async_check")
    wait_items(client, job.id, 3)
    stopped = cancel_and_wait(client, job.id)
    assert_stopped(stopped, andon.StopMethod.COOPERATIVE)
    assert_items_kept(client, stopped, at_least=3)


def test_worker_closes_the_event_loops_it_made(client: andon.Client, store: andon.SqliteStore) -> None:
    async_loops.clear()
    with andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.2):
        job = client.submit("async_loop")
        assert client.wait_finished(job.id, timeout=10).status is andon.JobStatus.SUCCEEDED
    [loop] = async_loops
    closed = loop.is_closed()
    if not closed:
        loop.close()  # the test's own cleanup, so the leak is reported once, here
    assert closed, "Worker.stop() left the slot's event loop open (it leaks with its self-pipe sockets)"


# -- thread escalation --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["busy", "busy_async"])
def test_code_that_never_checks_gets_cancelled_injected(client: andon.Client, worker: andon.Worker, kind: str) -> None:
    job = client.submit(kind)
    wait_items(client, job.id)
    stopped = cancel_and_wait(client, job.id)
    cancel = assert_stopped(stopped, andon.StopMethod.INJECTED)
    assert cancel.stop_seconds is not None
    assert cancel.stop_seconds >= 0.2, "injection must wait for the grace period"
    items = assert_items_kept(client, stopped, at_least=2)
    assert [item.data for item in items] == [{"started": True}, {"finally": True}], "the finally block ran"


# A thread blocked in C code is abandoned and its slot replaced: on a manual clock, in
# tests/unit/test_worker_clock.py::test_a_thread_blocked_in_c_code_is_abandoned_and_its_slot_replaced.


# -- process escalation -------------------------------------------------------------------


UNSTARTABLE_SCRIPT = """
import os
import sys
import threading

import andon


def main() -> None:
    app = andon.App(default_grace=0.3)

    @app.job("unpicklable", isolation="process")
    def unpicklable(ctx: andon.Context) -> None:
        # A local function: it cannot be pickled for the child process, so its start fails.
        ctx.emit("never runs")

    @app.job("quick")
    def quick(ctx: andon.Context) -> int:
        return 1

    with andon.SqliteStore(sys.argv[1]) as store:
        client = andon.Client(store, app, actor="test")
        worker = andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.2)
        worker.start()
        for kind in ("unpicklable", "quick"):
            job = client.submit(kind)
            try:
                print(kind, client.wait_finished(job.id, timeout=5).status.value, flush=True)
            except andon.WaitTimeout as exc:
                print(kind, "stuck:", exc, flush=True)
        stopper = threading.Thread(target=worker.stop, daemon=True)
        stopper.start()
        stopper.join(5)
        print("stop", "hangs" if stopper.is_alive() else "returned", flush=True)
    os._exit(0)  # a worker that hangs must not keep this process


if __name__ == "__main__":
    main()
"""


def test_a_process_handler_that_cannot_start_fails_its_job(tmp_path: Path, db_path: Path) -> None:
    """If the job's process cannot even start (here: the handler cannot be pickled), the job
    fails with that error, the slot goes on with the next job, and the worker still stops.
    Run in a separate process, since a worker that gets this wrong never stops."""
    script = tmp_path / "unstartable.py"
    script.write_text(UNSTARTABLE_SCRIPT)
    with andon.SqliteStore(str(db_path)):
        pass  # the schema exists before the other process opens the file
    done = subprocess.run(
        [sys.executable, str(script), str(db_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["unpicklable failed", "quick succeeded", "stop returned"], (
        done.stdout + done.stderr
    )
    with andon.SqliteStore(str(db_path)) as store:
        client = andon.Client(store)
        [failed] = client.list_jobs(kinds=["unpicklable"]).items
    assert failed.error is not None
    assert "pickle" in failed.error.message


def test_process_cooperative(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("proc_sleep")
    pid = wait_items(client, job.id)[0].data["pid"]
    assert pid != os.getpid()
    stopped = cancel_and_wait(client, job.id)
    assert_stopped(stopped, andon.StopMethod.COOPERATIVE)
    assert_items_kept(client, stopped)
    assert_gone(pid)


def test_process_that_never_checks_is_terminated(
    store: andon.SqliteStore, make_worker: Callable[..., andon.Worker]
) -> None:
    make_worker(example_app, concurrency=1, shutdown_grace_s=0.2)
    examples = andon.Client(store, example_app, actor="test")
    assert example_app.get("spin").grace_s == 0.5
    job = examples.submit("spin")
    pid = wait_items(examples, job.id)[0].data["pid"]
    assert is_alive(pid)
    stopped = cancel_and_wait(examples, job.id)
    cancel = assert_stopped(stopped, andon.StopMethod.TERMINATED)
    assert cancel.stop_seconds is not None
    assert cancel.stop_seconds >= 0.5, "SIGTERM must wait for the grace period"
    assert_items_kept(examples, stopped)
    assert_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_process_that_ignores_sigterm_is_killed(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("stubborn")
    pid = wait_items(client, job.id)[0].data["pid"]
    assert is_alive(pid)
    stopped = cancel_and_wait(client, job.id)
    cancel = assert_stopped(stopped, andon.StopMethod.KILLED)
    assert cancel.stop_seconds is not None
    assert cancel.stop_seconds >= 0.3 + 0.5, "SIGKILL comes one grace period (at least 0.5 s) after SIGTERM"
    assert_items_kept(client, stopped)
    assert_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


SLOW_START_SCRIPT = """
import multiprocessing
import os
import sys
import time

import andon
import andon._runtimes._process  # it sets the forkserver's preload list on import; ours comes after
from andon.examples import app


def main() -> None:
    # The forkserver starts with the first job process and imports these modules first; the
    # second one (next to this script) takes 2 s to import, so that first job process only
    # exists 2 s after the worker started it.
    multiprocessing.get_context("forkserver").set_forkserver_preload(["andon", "slow_preload"])
    with andon.SqliteStore(sys.argv[1]) as store:
        client = andon.Client(store, app, actor="test")
        worker = andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.5)
        worker.start()
        job = client.submit("spin")
        deadline = time.monotonic() + 10
        while client.get(job.id).status is andon.JobStatus.QUEUED and time.monotonic() < deadline:
            time.sleep(0.001)
        try:
            client.cancel(job.id, wait=True, timeout=10)
        except andon.WaitTimeout:
            print("the job did not stop", flush=True)
            os._exit(3)  # its process dies with this one (its pipe to the worker closes)
        worker.stop()


if __name__ == "__main__":
    main()
"""


def test_cancel_during_a_slow_process_start_still_escalates(tmp_path: Path, db_path: Path) -> None:
    """``spin`` (grace 0.5 s, never checks) cancelled while its process is still starting,
    and the start takes longer than both escalation steps (2 s): once the process exists it
    must still get its SIGTERM. Steps spent while there was no process to signal must not
    count, or the job would spin on forever."""
    script = tmp_path / "slow_start.py"
    script.write_text(SLOW_START_SCRIPT)
    (tmp_path / "slow_preload.py").write_text("import time\n\ntime.sleep(2.0)\n")
    with andon.SqliteStore(str(db_path)):
        pass  # the schema exists before the other process opens the file
    done = subprocess.run(
        [sys.executable, str(script), str(db_path)],
        cwd=tmp_path,  # the forkserver finds slow_preload on its path through the cwd
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"
    with andon.SqliteStore(str(db_path)) as store:
        [job] = andon.Client(store).list_jobs().items
    assert job.status is andon.JobStatus.CANCELLED
    assert job.cancel is not None
    assert job.cancel.stop_method in (andon.StopMethod.TERMINATED, andon.StopMethod.KILLED), job.cancel
    assert job.cancel.stop_seconds is not None
    assert job.cancel.stop_seconds < 8


@pytest.mark.parametrize("kind", ["shell", "shell_process"])
def test_popen_child_process_group_is_stopped(client: andon.Client, worker: andon.Worker, kind: str) -> None:
    job = client.submit(kind)
    data = wait_items(client, job.id)[0].data
    group = data["pid"]
    try:
        # Both sleeps (the background one and the foreground one) run in the child's group.
        wait_until(lambda: len(group_members(group)) >= 2, 5, f"the shell's children in group {group}")
        assert group not in (os.getpid(), os.getpgrp())
        stopped = cancel_and_wait(client, job.id)
        assert_stopped(stopped, andon.StopMethod.COOPERATIVE)
        assert_items_kept(client, stopped)
        wait_until(lambda: not group_members(group), 5, f"every process of group {group} to be gone")
        if kind == "shell_process":
            assert_gone(data["handler_pid"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # leave nothing behind, even when the test fails


@pytest.mark.parametrize(
    ("spin", "method"),
    [(True, andon.StopMethod.TERMINATED), (False, andon.StopMethod.COOPERATIVE)],
    ids=["never-checks", "cooperative"],
)
def test_plain_popen_child_of_a_process_handler_is_stopped(
    client: andon.Client, worker: andon.Worker, spin: bool, method: andon.StopMethod
) -> None:
    job = client.submit("plain_child", {"spin": spin})
    data = wait_items(client, job.id)[0].data
    child, handler = data["pid"], data["handler_pid"]
    try:
        stat = proc_stat(child)
        assert stat is not None
        assert stat[2] == handler, "the plain child is in the handler's process group"
        stopped = cancel_and_wait(client, job.id)
        assert_stopped(stopped, method)
        assert_items_kept(client, stopped)
        assert_gone(handler)
        wait_until(lambda: not is_alive(child), 5, f"the plain Popen child {child} to be gone")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handler, signal.SIGKILL)  # leave nothing behind, even when the test fails


# -- timeouts, shutdown -------------------------------------------------------------------


def test_timeout_cancels_with_reason_timeout(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("count", timeout=0.3)
    finished = client.wait_finished(job.id, timeout=10)
    cancel = assert_stopped(finished, andon.StopMethod.COOPERATIVE, andon.CancelReason.TIMEOUT)
    assert cancel.by == "andon"
    assert finished.started_at is not None
    assert cancel.requested_at - finished.started_at >= 0.3 - 0.05
    assert_items_kept(client, finished)


def test_shutdown_requeues_and_the_next_worker_finishes(
    client: andon.Client, store: andon.SqliteStore, db_path: Path
) -> None:
    first = andon.Worker(app, store, concurrency=1)
    first.start()
    try:
        job = client.submit("count", {"n": 40, "interval_s": 0.02})
        kept = len(wait_items(client, job.id, 3))
    finally:
        first.stop(grace_s=0.1)

    requeued = client.get(job.id)
    assert requeued.status is andon.JobStatus.QUEUED
    assert requeued.attempt == 1
    assert requeued.items_count >= kept
    events = client.events(job.id)
    assert [(e.type, e.reason) for e in events if e.type == "requeued"] == [("requeued", "shutdown")]
    first_items = client.results(job.id)
    assert len(first_items) == requeued.items_count
    assert {item.attempt for item in first_items} == {1}

    with andon.SqliteStore(str(db_path)) as other_store, andon.Worker(app, other_store, concurrency=1):
        finished = client.wait_finished(job.id, timeout=15)
    assert finished.status is andon.JobStatus.SUCCEEDED
    assert finished.attempt == 2
    items = assert_items_kept(client, finished)
    assert items[: len(first_items)] == first_items, "the first attempt's items are kept"
    assert [item.data["i"] for item in items if item.attempt == 2] == list(range(40))


# -- the races a user can cause ---------------------------------------------------------


def test_cancel_before_start_withdraws_the_job(client: andon.Client, make_worker: Callable[..., andon.Worker]) -> None:
    job = client.submit("count", {"n": 1})
    result = client.cancel(job.id)
    assert result.outcome is andon.CancelOutcome.WITHDRAWN
    assert_stopped(result.job, andon.StopMethod.WITHDRAWN)

    make_worker(app, concurrency=1)
    later = client.submit("count", {"n": 1, "interval_s": 0.0})
    assert client.wait_finished(later.id, timeout=10).status is andon.JobStatus.SUCCEEDED
    withdrawn = client.get(job.id)
    assert withdrawn.status is andon.JobStatus.CANCELLED
    assert withdrawn.started_at is None
    assert withdrawn.attempt == 0
    assert withdrawn.items_count == 0
    assert "started" not in [e.type for e in client.events(job.id)]


def test_cancel_twice_is_a_no_op(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("count")
    wait_items(client, job.id)
    first = client.cancel(job.id)
    second = client.cancel(job.id)
    assert first.outcome is andon.CancelOutcome.REQUESTED
    assert second.outcome is andon.CancelOutcome.ALREADY
    assert not second.changed
    finished = client.wait_finished(job.id, timeout=10)
    assert_stopped(finished, andon.StopMethod.COOPERATIVE)
    assert client.cancel(job.id).outcome is andon.CancelOutcome.ALREADY
    assert [e.type for e in client.events(job.id)].count("cancel requested") == 1


def test_cancel_after_finish_raises_job_finished(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("count", {"n": 2, "interval_s": 0.0})
    assert client.wait_finished(job.id, timeout=10).status is andon.JobStatus.SUCCEEDED
    with pytest.raises(andon.JobFinished, match="succeeded") as raised:
        client.cancel(job.id)
    assert raised.value.state == "succeeded"
    with pytest.raises(andon.JobFinished, match="succeeded"):
        client.fail(job.id)
    assert client.get(job.id).cancel is None


def test_cancel_unknown_id_raises_job_not_found(client: andon.Client) -> None:
    deleted = client.submit("count", {"n": 1})
    client.cancel(deleted.id)
    client.delete(deleted.id)
    with pytest.raises(andon.JobNotFound):
        client.cancel(deleted.id)
    with pytest.raises(andon.JobNotFound):
        client.cancel("not-a-job-id")


def test_force_fail_of_a_running_job(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("count")
    wait_items(client, job.id)
    result = client.fail(job.id, message="enough", wait=True, timeout=10)
    failed = result.job
    assert_stopped(failed, andon.StopMethod.COOPERATIVE, andon.CancelReason.FORCED, andon.JobStatus.FAILED)
    assert failed.error is not None
    assert failed.error.type == "ForcedFailure"
    assert_items_kept(client, failed)


def test_force_fail_follows_the_retry_policy(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("count_twice")
    wait_items(client, job.id)
    client.fail(job.id)
    # Re-queued and started again as attempt 2 (its first attempt's items are kept).
    wait_until(lambda: client.get(job.id).attempt == 2, 10, "the second attempt")
    wait_until(
        lambda: any(item.attempt == 2 for item in client.results(job.id)),
        10,
        "an item of the second attempt",
    )
    assert "retry scheduled" in [e.type for e in client.events(job.id)]
    # Out of attempts: a second force-fail is final.
    finished = client.fail(job.id, wait=True, timeout=10).job
    assert_stopped(finished, andon.StopMethod.COOPERATIVE, andon.CancelReason.FORCED, andon.JobStatus.FAILED)
    assert finished.error is not None
    assert finished.error.type == "ForcedFailure"
    assert {item.attempt for item in assert_items_kept(client, finished)} == {1, 2}


def test_force_fail_without_retry_is_final(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("count_twice")
    wait_items(client, job.id)
    failed = client.fail(job.id, retry=False, wait=True, timeout=10).job
    assert_stopped(failed, andon.StopMethod.COOPERATIVE, andon.CancelReason.FORCED, andon.JobStatus.FAILED)
    assert failed.attempt == 1
    assert failed.error is not None
    assert failed.error.type == "ForcedFailure"
    assert "retry scheduled" not in [e.type for e in client.events(job.id)]


def test_nothing_is_emitted_after_the_job_settled(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("late_emitter")
    wait_items(client, job.id, 5)
    stopped = cancel_and_wait(client, job.id)
    assert_stopped(stopped, andon.StopMethod.COOPERATIVE)
    # The helper thread outlived the handler; its next emit was refused.
    job_id, error = late_emits.get(timeout=5)
    assert job_id == job.id
    assert isinstance(error, andon.Cancelled)
    count_at_end = stopped.items_count
    assert client.get(job.id).items_count == count_at_end
    assert len(assert_items_kept(client, stopped, at_least=5)) == count_at_end


@pytest.mark.parametrize("kind", ["tidy", "tidy_async", "tidy_process"])
def test_cleanups_run_in_reverse_order_on_cancel(client: andon.Client, worker: andon.Worker, kind: str) -> None:
    job = client.submit(kind)
    wait_items(client, job.id, 2)
    stopped = cancel_and_wait(client, job.id)
    expected_method = andon.StopMethod.ASYNC if kind == "tidy_async" else andon.StopMethod.COOPERATIVE
    assert_stopped(stopped, expected_method)
    items = assert_items_kept(client, stopped, at_least=5)
    assert [item.data for item in items] == [
        "manager 2 entered",
        "ready",
        "cleanup 3",
        "manager 2 exited",
        "cleanup 1",
    ]


def test_retry_policy_runs_every_attempt_and_keeps_their_items(client: andon.Client, worker: andon.Worker) -> None:
    job = client.submit("flaky")
    finished = client.wait_finished(job.id, timeout=15)
    assert finished.status is andon.JobStatus.FAILED
    assert finished.attempt == 3
    assert finished.failures == 3
    assert finished.error is not None
    assert finished.error.type == "RuntimeError"
    assert finished.error.message == "attempt 3 fails on purpose"
    items = assert_items_kept(client, finished, at_least=3)
    assert [(item.attempt, item.data) for item in items] == [(n, {"attempt": n}) for n in (1, 2, 3)]
    events = [e.type for e in client.events(job.id)]
    assert events.count("started") == 3
    assert events.count("retry scheduled") == 2
    assert events[-1] == "failed"
