"""Schedules as every store must keep them (issue 17): each tick handled once whoever leads,
the overlap policies through the keyed submit, catch-up after downtime, a trace for every
tick, and the scheduler's lease. Time is a ``ManualClock``: no test waits for real time.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import andon
from andon import CancelReason, JobStatus, OnConflict
from andon._schedules import CatchUp, ScheduleSpec, TickOutcome
from andon._storage._engine import StoreEngine
from tests.integration.conftest import Backend
from tests.integration.test_store_contract import claim, succeed

LEASE_S = 5.0
START = 1_700_000_000.0  # ManualClock's start: a whole multiple of every interval used here


def every(name: str = "s", seconds: float = 10.0, **options: object) -> ScheduleSpec:
    return ScheduleSpec(name=name, kind="a", params={"x": 1}, every_s=seconds, **options)  # type: ignore[arg-type]  # test options


def lead(store: StoreEngine, holder: str = "w1") -> None:
    assert store.take_scheduler_lease(holder, LEASE_S)


def tick(backend: Backend, seconds: float, holder: str = "w1") -> list[andon.Tick]:
    """Move time on, keep the lease, and fire what is due."""
    backend.clock.advance(seconds)
    lead(backend.store, holder)
    return backend.store.fire_due(backend.clock.now(), holder)


def test_a_declared_schedule_ticks_on_its_interval(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every()], "w1")
    (schedule,) = store.list_schedules()
    assert schedule.next_at == START + 10
    assert tick(backend, 9.9) == []
    (fired,) = tick(backend, 0.1)
    assert (fired.outcome, fired.tick_at) == (TickOutcome.ENQUEUED, START + 10)
    job = store.get(fired.job_id or "")
    assert (job.kind, job.params, job.schedule, job.key) == ("a", {"x": 1}, "s", "schedule:s")
    assert store.get_schedule("s").next_at == START + 20


def test_a_cron_schedule_reads_its_time_zone(backend: Backend) -> None:
    # 09:00 in Paris on 2023-11-14 (UTC+1) is 08:00 UTC.
    spec = ScheduleSpec(name="c", kind="a", cron="0 9 * * *", timezone="Europe/Paris")
    backend.store.add_schedule(spec, "admin")
    next_at = backend.store.get_schedule("c").next_at
    assert next_at is not None
    import datetime

    assert datetime.datetime.fromtimestamp(next_at, datetime.UTC).hour == 8


def test_two_schedulers_never_fire_one_tick_twice(backend: Backend) -> None:
    """Two leaders at once (one has not noticed it lost the lease): the tick rows decide."""
    store = backend.store
    store.sync_schedules([every(seconds=1.0)], "w1")
    peer = backend.peer()
    try:
        fired: list[andon.Tick] = []
        for _ in range(30):
            backend.clock.advance(1.0)
            barrier = threading.Barrier(2)

            def fire(one: StoreEngine, holder: str, barrier: threading.Barrier = barrier) -> list[andon.Tick]:
                # Both think they lead: give each the lease just before it fires.
                barrier.wait()
                one.take_scheduler_lease(holder, LEASE_S)
                return one.fire_due(backend.clock.now(), holder)

            store.release_scheduler_lease("w1")
            store.release_scheduler_lease("w2")
            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(fire, [store, peer], ["w1", "w2"]))
            fired.extend(t for result in results for t in result)
        ticks = sorted(t.tick_at for t in fired)
        assert len(ticks) == len(set(ticks))
        assert len(store.schedule_ticks("s", 1000)) == len(ticks)
        # Every job of the schedule comes from one tick.
        jobs = store.list_jobs(andon.JobFilter(kinds=["a"]), limit=1000).items
        assert sorted(j.id for j in jobs) == sorted(t.job_id or "" for t in fired if t.outcome is TickOutcome.ENQUEUED)
    finally:
        if peer is not store:
            peer.close()


def test_the_lease_goes_to_one_holder_and_over_when_it_expires(backend: Backend) -> None:
    store = backend.store
    assert store.take_scheduler_lease("w1", LEASE_S)
    assert not store.take_scheduler_lease("w2", LEASE_S)
    lease = store.scheduler_lease()
    assert lease is not None
    assert lease.holder == "w1"
    backend.clock.advance(LEASE_S - 0.1)
    assert not store.take_scheduler_lease("w2", LEASE_S)
    assert store.take_scheduler_lease("w1", LEASE_S)  # renewed
    backend.clock.advance(LEASE_S + 0.1)
    assert store.scheduler_lease() is None
    assert store.take_scheduler_lease("w2", LEASE_S)
    # The old leader, fenced by the store: it fires nothing.
    store.sync_schedules([every(seconds=1.0)], "w1")
    backend.clock.advance(2.0)
    assert store.fire_due(backend.clock.now(), "w1") == []
    assert store.fire_due(backend.clock.now(), "w2") != []
    store.release_scheduler_lease("w2")
    assert store.take_scheduler_lease("w1", LEASE_S)


def test_skip_records_the_tick_and_names_the_active_job(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every()], "w1")
    (first,) = tick(backend, 10)
    running = claim(store)
    (skipped,) = tick(backend, 10)
    assert skipped.outcome is TickOutcome.SKIPPED
    assert skipped.job_id == running.id
    assert running.id in (skipped.message or "")
    succeed(store, running)
    (again,) = tick(backend, 10)
    assert again.outcome is TickOutcome.ENQUEUED
    assert first.job_id == running.id


def test_queue_keeps_at_most_one_waiting(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every(overlap=OnConflict.QUEUE)], "w1")
    tick(backend, 10)
    running = claim(store)
    (queued,) = tick(backend, 10)
    assert queued.outcome is TickOutcome.QUEUED
    (skipped,) = tick(backend, 10)
    assert (skipped.outcome, skipped.job_id) == (TickOutcome.SKIPPED, queued.job_id)
    active = store.list_jobs(andon.JobFilter(statuses=[JobStatus.QUEUED, JobStatus.RUNNING]), limit=10).items
    assert sorted(j.id for j in active) == sorted([running.id, queued.job_id or ""])


def test_supersede_stops_the_running_job_in_the_ticks_transaction(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every(overlap=OnConflict.SUPERSEDE)], "w1")
    tick(backend, 10)
    running = claim(store)
    (superseding,) = tick(backend, 10)
    assert superseding.outcome is TickOutcome.SUPERSEDED
    assert running.id in (superseding.message or "")
    stopped = store.get(running.id)
    assert stopped.status is JobStatus.CANCELLING
    assert stopped.cancel is not None
    assert stopped.cancel.reason is CancelReason.SUPERSEDED


@pytest.mark.parametrize(
    ("catch_up", "fired", "missed"),
    [
        (CatchUp.LATEST, [START + 100], 9),
        (CatchUp.NONE, [], 10),
        (CatchUp.ALL, [START + 10 * i for i in range(1, 11)], 0),
    ],
)
def test_catch_up_after_downtime(backend: Backend, catch_up: CatchUp, fired: list[float], missed: int) -> None:
    store = backend.store
    store.sync_schedules([every(catch_up=catch_up, overlap=OnConflict.QUEUE)], "w1")
    traces = tick(backend, 105)  # ten ticks came due while no scheduler ran
    assert [t.tick_at for t in traces if t.outcome is not TickOutcome.MISSED] == fired
    missed_traces = [t for t in traces if t.outcome is TickOutcome.MISSED]
    if missed:
        (trace,) = missed_traces  # one trace for the lot
        assert trace.tick_at == START + 10
        assert f"{missed} tick(s) missed" in (trace.message or "")
    else:
        assert missed_traces == []
    assert store.get_schedule("s").next_at == START + 110
    # A late tick is not a missed one: the next, handled 4 s late, fires.
    (late,) = tick(backend, 9)
    assert late.outcome is not TickOutcome.MISSED


def test_pause_stops_the_ticks_and_resume_starts_after_now(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every()], "w1")
    paused = store.pause_schedule("s", "ann")
    assert (paused.is_paused, paused.paused_by, paused.next_at) == (True, "ann", None)
    assert tick(backend, 50) == []
    resumed = store.resume_schedule("s", "ann")
    assert resumed.next_at == START + 60
    assert not resumed.is_paused
    # A worker's sync keeps a pause.
    store.pause_schedule("s", "ann")
    store.sync_schedules([every()], "w2")
    assert store.get_schedule("s").is_paused


def test_trigger_makes_a_job_now_and_leaves_a_trace(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every()], "w1")
    triggered = store.trigger_schedule("s", "ann")
    assert (triggered.outcome, triggered.by) == (TickOutcome.TRIGGERED, "ann")
    assert store.get(triggered.job_id or "").schedule == "s"
    again = store.trigger_schedule("s", "ann")  # overlap skip: the first is still queued
    assert (again.outcome, again.job_id) == (TickOutcome.SKIPPED, triggered.job_id)
    assert [t.outcome for t in store.schedule_ticks("s")] == [TickOutcome.SKIPPED, TickOutcome.TRIGGERED]


def test_runtime_and_app_schedules(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every("app-one")], "w1")
    store.add_schedule(every("mine"), "ann")
    with pytest.raises(andon.ScheduleExists):
        store.add_schedule(every("mine"), "ann")
    with pytest.raises(andon.ScheduleFromApp):
        store.remove_schedule("app-one", "ann")
    with pytest.raises(andon.ScheduleNotFound):
        store.remove_schedule("nope", "ann")
    with pytest.raises(andon.ScheduleNotFound):
        store.pause_schedule("nope", "ann")
    # An app that no longer declares a schedule removes it at its sync; runtime ones stay,
    # and the history of the removed one stays too.
    store.trigger_schedule("app-one", "ann")
    assert store.sync_schedules([], "w1") == ["app-one"]
    assert [s.name for s in store.list_schedules()] == ["mine"]
    assert len(store.schedule_ticks("app-one")) == 1
    store.remove_schedule("mine", "ann")
    assert store.list_schedules() == []


def test_a_changed_timing_moves_the_next_tick_and_an_unchanged_one_keeps_it(backend: Backend) -> None:
    store = backend.store
    store.sync_schedules([every(seconds=10.0)], "w1")
    backend.clock.advance(3)
    store.sync_schedules([every(seconds=10.0, priority=5)], "w2")
    assert store.get_schedule("s").next_at == START + 10
    assert store.get_schedule("s").spec.priority == 5
    store.sync_schedules([every(seconds=7.0)], "w2")
    assert store.get_schedule("s").next_at == START + 8  # the first whole multiple of 7 s after now


@pytest.mark.parametrize(
    "options",
    [
        {"cron": "61 * * * *"},
        {"cron": "* * *"},
        {"every_s": 0.0},
        {"every_s": 1.0, "timezone": "Mars/Olympus"},
        {"every_s": 1.0, "overlap": "sometimes"},
        {"every_s": 1.0, "catch_up": "most"},
        {"every_s": 1.0, "cron": "* * * * *"},
        {},
    ],
)
def test_bad_schedules_are_refused_with_a_reason(options: dict[str, object]) -> None:
    with pytest.raises(andon.InvalidSchedule):
        ScheduleSpec(name="s", kind="a", **options)  # type: ignore[arg-type]  # bad on purpose
