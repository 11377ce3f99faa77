"""No worker loop dies of an unexpected error, and a value no store can keep fails only the
handler that passed it (issue 12, item 1).

Two kinds of fault, against real stores and a real worker:

* values a handler hands over that a store cannot represent (an int past 64 bits, NaN, a
  NUL character, a lone surrogate, a huge message): each is checked or made storable at
  the context's boundary, so the error reaches that handler's call only;
* an exception that is not a storage failure, injected into the store call each loop
  makes (slots: claim and settle; flusher: write; lease: renew and recover; control:
  cancel notices) and into the monitor: the loop logs it and goes on, and other jobs keep
  their items, gap-free.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import andon
from andon._jobs import OutcomeKind
from andon._output import AttemptEnd, ProgressUpdate
from andon._sizes import MAX_ERROR_MESSAGE_CHARS
from andon._storage import Store
from andon._storage._postgres import PostgresStore
from tests.postgres import fresh_schema
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

app = andon.App(default_grace=0.3)


@app.job("big_progress")
def big_progress(ctx: andon.Context, n: int = 10**20, steps: int = 50) -> dict[str, Any]:
    """The built-in ``count`` pattern with a total no SQLite integer can hold."""
    for i in range(steps):
        ctx.progress(i, n, f"step {i}")
        ctx.emit({"i": i})
        ctx.sleep(0.002)
    return {"steps": steps}


@app.job("emitter")
def emitter(ctx: andon.Context, steps: int = 200) -> dict[str, int]:
    for i in range(steps):
        ctx.emit({"i": i})
        ctx.sleep(0.002)
    return {"steps": steps}


@app.job("forever")
def forever(ctx: andon.Context) -> None:
    while True:
        ctx.emit({"alive": True})
        ctx.sleep(0.01)


@app.job("spin")
def spin(ctx: andon.Context) -> None:
    """Never reaches a checkpoint: only an injected exception stops it."""
    ctx.emit({"started": True})
    spins = 0
    while True:
        spins += 1


@app.job("odd_values")
def odd_values(ctx: andon.Context) -> dict[str, str]:
    """Hands over every value a store cannot keep as it is; reports what each call did."""
    seen: dict[str, str] = {}
    attempts: dict[str, Callable[[], object]] = {
        "huge_int": lambda: ctx.progress(1, 10**400),
        "nan": lambda: ctx.progress(float("nan")),
        "not_a_number": lambda: ctx.progress("3"),  # type: ignore[arg-type]  # on purpose
        "long_message": lambda: ctx.progress(1, 2, "x" * 5000),
        "not_a_message": lambda: ctx.progress(1, 2, 42),  # type: ignore[arg-type]  # on purpose
    }
    for name, call in attempts.items():
        try:
            call()
            seen[name] = "accepted"
        except (TypeError, ValueError) as exc:
            seen[name] = type(exc).__name__
    ctx.progress(1, 2, "nul\x00 and lone \ud800 surrogate")
    ctx.emit({"text": "nul\x00 and lone \ud800 surrogate"})
    return seen


@app.job("bad_error")
def bad_error(ctx: andon.Context) -> None:
    raise RuntimeError("nul\x00, lone \udc80 and a long tail " + "y" * 200_000)


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with contextlib.ExitStack() as stack:
        store: Store
        if request.param == "sqlite":
            store = andon.SqliteStore(str(tmp_path / "loops.db"))
        else:
            store = PostgresStore(stack.enter_context(fresh_schema()))
        store.open()
        stack.callback(store.close)
        yield store


@contextlib.contextmanager
def running(store: Store, **options: Any) -> Iterator[andon.Worker]:
    options.setdefault("shutdown_grace_s", 0.5)
    worker = andon.Worker(app, store, **options)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def assert_all_items(client: andon.Client, job_id: str, steps: int) -> None:
    items = [item.data["i"] for item in client.results(job_id)]
    assert items == list(range(steps)), f"{job_id}: items missing or out of order"


def alive_loops(worker: andon.Worker) -> set[str]:
    prefix = "andon-"
    return {t.name for t in threading.enumerate() if t.name.startswith(prefix) and t in worker._threads}


# -- values a store cannot keep ------------------------------------------------------


def test_a_total_past_64_bits_is_stored_and_other_jobs_lose_nothing(any_store: Store) -> None:
    client = andon.Client(any_store, app, actor="test")
    with running(any_store, concurrency=3):
        poison = client.submit("big_progress", {"steps": 50})
        others = [client.submit("emitter", {"steps": 200}) for _ in range(2)]
        for job in (poison, *others):
            assert client.wait_finished(job.id, timeout=30).status is andon.JobStatus.SUCCEEDED
    assert client.get(poison.id).progress_total == float(10**20)
    assert_all_items(client, poison.id, 50)
    for job in others:
        assert_all_items(client, job.id, 200)


def test_a_cancel_of_such_a_job_stops_it_at_once(any_store: Store) -> None:
    client = andon.Client(any_store, app, actor="test")
    with running(any_store, concurrency=2) as worker:
        job = client.submit("big_progress", {"steps": 100_000})
        wait_until(lambda: client.get(job.id).items_count > 5, timeout=20)
        stopped = client.cancel(job.id, wait=True, timeout=10).job
        assert stopped.status is andon.JobStatus.CANCELLED
        assert stopped.cancel is not None
        assert stopped.cancel.stop_method is andon.StopMethod.COOPERATIVE
        assert stopped.items_count > 5
        assert alive_loops(worker) >= {"andon-control", "andon-lease", "andon-monitor", "andon-flusher"}


def test_each_odd_value_fails_only_its_own_call(any_store: Store) -> None:
    client = andon.Client(any_store, app, actor="test")
    with running(any_store):
        job = client.submit("odd_values", {})
        done = client.wait_finished(job.id, timeout=30)
    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    assert done.result == {
        "huge_int": "ValueError",
        "nan": "ValueError",
        "not_a_number": "TypeError",
        "long_message": "ValueError",
        "not_a_message": "TypeError",
    }
    assert done.progress_message == "nul\ufffd and lone \ufffd surrogate"
    assert client.results(job.id)[0].data == {"text": "nul\x00 and lone \ud800 surrogate"}


def test_an_error_no_store_could_keep_is_recorded_clipped(any_store: Store) -> None:
    client = andon.Client(any_store, app, actor="test")
    with running(any_store):
        job = client.submit("bad_error", {})
        done = client.wait_finished(job.id, timeout=30)
    assert done.status is andon.JobStatus.FAILED
    assert done.error is not None
    assert done.error.type == "RuntimeError"
    assert done.error.message.startswith("nul\ufffd, lone \ufffd and a long tail yyy")
    assert len(done.error.message) <= MAX_ERROR_MESSAGE_CHARS
    assert "more characters cut by andon" in done.error.message
    assert done.error.traceback is not None
    assert "bad_error" in done.error.traceback


# -- unexpected exceptions in each loop ---------------------------------------------


class Bug(Exception):
    """An exception that is not a storage failure: what a bug in a store would raise."""


def fail_calls(
    monkeypatch: pytest.MonkeyPatch, store: Store, method: str, when: Callable[..., bool] | int
) -> list[int]:
    """Make ``store.method`` raise :class:`Bug` ``when`` times, or whenever ``when(*args)``."""
    real = getattr(store, method)
    raised: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> Any:  # Any: whatever the method takes
        hit = when(*args, **kwargs) if callable(when) else len(raised) < when
        if hit:
            raised.append(1)
            raise Bug(f"injected into {method}")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, method, failing)
    return raised


@pytest.mark.parametrize(
    "methods",
    [
        ("claim_many",),
        ("settle_many",),
        ("settle_and_claim",),
        ("write_progress",),
        ("renew_leases",),
        ("recover_lost",),
    ],
)
def test_an_unexpected_error_in_a_store_call_does_not_kill_its_loop(
    monkeypatch: pytest.MonkeyPatch,
    store: andon.SqliteStore,
    caplog: pytest.LogCaptureFixture,
    methods: tuple[str, ...],
) -> None:
    client = andon.Client(store, app, actor="test")
    if "settle_many" in methods:
        # The worker calls settle_many only for a batch that wants no next job, which group
        # commit on a busy machine may never form: here every settlement takes that path.
        def settle_then_claim(
            worker_id: str, ends: Any, kinds: Any, lease_s: float, limit: int
        ) -> tuple[list[Any], list[andon.Job]]:
            return store.settle_many(worker_id, ends), store.claim_many(worker_id, kinds, lease_s, limit)

        monkeypatch.setattr(store, "settle_and_claim", settle_then_claim)
    # Once each: a settlement that meets the bug is retried alone and must then be stored
    # as it was (the degraded record is the next test's subject).
    raised = [fail_calls(monkeypatch, store, method, 1) for method in methods]
    # All queued before the worker starts: its first claim fills both slots, so the first
    # settlement wants a next job (settle_and_claim) whatever the machine's load.
    jobs = [client.submit("emitter", {"steps": 100}) for _ in range(6)]
    with running(store, concurrency=2, lease_s=0.6) as worker:
        for job in jobs:
            client.wait_finished(job.id, timeout=30)
        wait_until(lambda: all(raised), timeout=10, what="the injected faults")
        loops = alive_loops(worker)
    assert {"andon-control", "andon-lease", "andon-monitor", "andon-flusher"} <= loops
    assert sum(name.startswith("andon-slot") for name in loops) == 2
    for job in jobs:
        done = client.get(job.id)
        assert done.status is andon.JobStatus.SUCCEEDED, (job.id, done.error)
        assert_all_items(client, job.id, 100)
    assert "injected into" in caplog.text


def test_the_control_loop_goes_on_to_fire_a_timeout(monkeypatch: pytest.MonkeyPatch, store: andon.SqliteStore) -> None:
    """Timeouts are fired by the control loop alone: it must outlive three faults."""
    client = andon.Client(store, app, actor="test")
    raised = fail_calls(monkeypatch, store, "cancel_notices", 3)
    with running(store, concurrency=1):
        job = client.submit("forever", {}, timeout=0.5)
        stopped = client.wait_finished(job.id, timeout=20)
    assert stopped.status is andon.JobStatus.CANCELLED
    assert stopped.cancel is not None
    assert stopped.cancel.reason is andon.CancelReason.TIMEOUT
    assert len(raised) == 3


def test_the_monitor_goes_on_to_escalate_a_stop(monkeypatch: pytest.MonkeyPatch, store: andon.SqliteStore) -> None:
    """Injection into a thread that never checks is the monitor's alone: it must outlive faults."""
    real = andon.Worker._monitor_step
    raised: list[int] = []

    def failing(worker: andon.Worker) -> None:
        if len(raised) < 3:
            raised.append(1)
            raise Bug("injected into the monitor")
        real(worker)

    monkeypatch.setattr(andon.Worker, "_monitor_step", failing)
    client = andon.Client(store, app, actor="test")
    with running(store, concurrency=1) as worker:
        job = client.submit("spin", {})
        wait_until(lambda: client.get(job.id).items_count > 0, timeout=20)
        stopped = client.cancel(job.id, wait=True, timeout=10).job
        assert "andon-monitor" in alive_loops(worker)
    assert stopped.status is andon.JobStatus.CANCELLED
    assert stopped.cancel is not None
    assert stopped.cancel.stop_method is andon.StopMethod.INJECTED
    assert len(raised) == 3


def test_output_one_job_cannot_write_never_holds_up_another(
    monkeypatch: pytest.MonkeyPatch, store: andon.SqliteStore
) -> None:
    """A flush that always fails for one job: the others' items are written, gap-free."""
    client = andon.Client(store, app, actor="test")
    poison = client.submit("emitter", {"steps": 1000})

    def poisoned(updates: Sequence[ProgressUpdate]) -> bool:
        return any(update.job_id == poison.id for update in updates)

    fail_calls(monkeypatch, store, "write_progress", poisoned)
    with running(store, concurrency=3):
        others = [client.submit("emitter", {"steps": 300}) for _ in range(2)]
        wait_until(lambda: all(client.get(job.id).items_count >= 100 for job in others), timeout=20)
        held = client.get(poison.id)
        assert (held.status, held.items_count) == (andon.JobStatus.RUNNING, 0)  # its output waits for its end
        for job in (poison, *others):
            assert client.wait_finished(job.id, timeout=30).status is andon.JobStatus.SUCCEEDED
    assert_all_items(client, poison.id, 1000)
    for job in others:
        assert_all_items(client, job.id, 300)


def test_an_end_the_store_refuses_is_recorded_as_that_attempts_failure(
    monkeypatch: pytest.MonkeyPatch, store: andon.SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A settlement that fails with a bug every time: only that job fails, saying why."""
    caplog.set_level(logging.INFO, "andon.worker")
    client = andon.Client(store, app, actor="test")
    poison = client.submit("emitter", {"steps": 50})

    def poisoned(_worker: str, ends: Sequence[AttemptEnd], *_rest: Any) -> bool:
        return any(s.job_id == poison.id and s.outcome.kind is OutcomeKind.SUCCEEDED for s in ends)

    fail_calls(monkeypatch, store, "settle_many", poisoned)
    fail_calls(monkeypatch, store, "settle_and_claim", poisoned)
    with running(store, concurrency=2):
        others = [client.submit("emitter", {"steps": 50}) for _ in range(3)]
        done = client.wait_finished(poison.id, timeout=30)
        for job in others:
            assert client.wait_finished(job.id, timeout=30).status is andon.JobStatus.SUCCEEDED
    assert done.status is andon.JobStatus.FAILED
    assert done.error is not None
    assert done.error.type == "AndonInternalError"
    assert "injected into settle" in done.error.message
    assert_all_items(client, poison.id, 50)  # its items are kept all the same
    assert "recording its end failed unexpectedly" in caplog.text


def test_loops_survive_for_the_whole_run(store: andon.SqliteStore) -> None:
    """Control: with no fault at all the same loops are there (the helper sees them)."""
    with running(store, concurrency=2) as worker:
        time.sleep(0.05)
        loops = alive_loops(worker)
    assert {"andon-control", "andon-lease", "andon-monitor", "andon-flusher", "andon-slot-0", "andon-slot-1"} <= loops


def test_a_stop_during_a_claim_in_flight_still_stops_the_job_it_claims(store: andon.SqliteStore) -> None:
    """stop() right after a submit: a job claimed while stop() waited is stopped too."""
    client = andon.Client(store, app, actor="test")
    for _ in range(20):
        worker = andon.Worker(app, store, concurrency=1, shutdown_grace_s=0.2)
        worker.start()
        job = client.submit("forever", {})
        stopper = threading.Thread(target=worker.stop)
        stopper.start()
        stopper.join(10)
        assert not stopper.is_alive(), "stop() left a claimed job running"
        assert client.get(job.id).status is andon.JobStatus.QUEUED  # never started, or put back
        client.cancel(job.id)
