"""The workers registry on every store: registration, heartbeats, silence, clean stops,
workers found dead (their jobs recovered exactly once, by each job's policy), the lookout's
rule (only processes of this machine), pruning, and a real worker keeping its row fresh.

Time comes from the backend's ``ManualClock``; dead processes are real ones (a child of the
test, killed and reaped, or killed and left a zombie).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest

import andon
from andon import CancelReason, JobStatus, ManualClock, StopMethod, WorkerStatus
from andon._storage._engine import StoreEngine
from andon._workers import (
    FENCE_SHARE,
    Lookout,
    Machine,
    ProcessId,
    WorkerRegistration,
    process_id,
    this_machine,
    this_process,
)
from tests.integration.conftest import Backend
from tests.integration.test_store_contract import claim, submit
from tests.support import proc_stat, wait_until

pytestmark = pytest.mark.timeout(60)

LEASE_S = 30.0


def registration(worker_id: str = "w1", process: ProcessId | None = None, slots: int = 2) -> WorkerRegistration:
    return WorkerRegistration(worker_id, process or this_process(), "9.9.9", ("a",), slots, LEASE_S)


def row(store: StoreEngine, worker_id: str) -> andon.WorkerInfo:
    (found,) = [w for w in store.workers() if w.id == worker_id]
    return found


@pytest.fixture
def gone() -> ProcessId:
    """A process of this machine that has ended (and was reaped)."""
    child = subprocess.Popen(["sleep", "60"])
    process = process_id(child.pid)
    assert process is not None
    assert process.start is not None
    child.kill()
    child.wait()
    return process


@pytest.fixture
def zombie() -> Iterator[ProcessId]:
    """A process of this machine killed but not reaped yet: it has ended; only its entry is left."""
    child = subprocess.Popen(["sleep", "60"])
    process = process_id(child.pid)
    assert process is not None
    child.kill()
    wait_until(lambda: (proc_stat(child.pid) or ("",))[0] == "Z", 5, "the child to be a zombie")
    yield process
    child.wait()


def test_a_registered_worker_is_alive_with_its_slots_and_the_jobs_it_holds(store: StoreEngine) -> None:
    store.register_worker(registration(slots=3))
    jobs = [submit(store) for _ in range(2)]
    held = [claim(store, "w1") for _ in jobs]
    worker = row(store, "w1")
    assert worker.status is WorkerStatus.ALIVE
    assert worker.is_alive
    assert (worker.host, worker.pid, worker.version, worker.kinds) == (
        this_machine().host,
        this_process().pid,
        "9.9.9",
        ("a",),
    )
    assert (worker.slots, worker.running, worker.slots_in_use) == (3, 2, 2)
    assert sorted(worker.job_ids) == sorted(job.id for job in held)
    assert worker.heartbeat_age_s == 0.0
    assert worker.silent_s is None
    assert worker.stopped_at is None


def test_a_worker_is_silent_from_two_thirds_of_its_lease_without_a_heartbeat(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    reg = registration()
    store.register_worker(reg)
    clock.advance(LEASE_S * FENCE_SHARE - 1)
    assert row(store, "w1").status is WorkerStatus.ALIVE
    store.renew_leases("w1", LEASE_S, [])  # a renewal without the heartbeat refreshes nothing
    clock.advance(1)
    silent = row(store, "w1")
    assert silent.status is WorkerStatus.SILENT
    assert silent.silent_s == pytest.approx(LEASE_S * FENCE_SHARE)
    clock.advance(LEASE_S)
    assert row(store, "w1").silent_s == pytest.approx(LEASE_S * (1 + FENCE_SHARE))
    store.renew_leases("w1", LEASE_S, [], heartbeat=reg)
    back = row(store, "w1")
    assert back.status is WorkerStatus.ALIVE
    assert back.heartbeat_age_s == 0.0
    assert back.heartbeat_at == clock.now()


def test_the_heartbeat_renews_the_leases_in_the_same_call(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    reg = registration()
    store.register_worker(reg)
    job = submit(store)
    claim(store, "w1")
    clock.advance(LEASE_S * 0.9)
    assert store.renew_leases("w1", LEASE_S, [job.id], heartbeat=reg) == [job.id]
    clock.advance(LEASE_S * 0.9)
    assert store.recover_lost() == [], "the lease was renewed with the heartbeat"
    assert row(store, "w1").heartbeat_age_s == pytest.approx(LEASE_S * 0.9)


def test_a_clean_stop_ends_the_row_as_stopped(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.register_worker(registration())
    clock.advance(5)
    store.mark_worker_stopped("w1")
    worker = row(store, "w1")
    assert worker.status is WorkerStatus.STOPPED
    assert worker.stopped_at == clock.now()
    assert worker.end_message is None
    assert worker.slots_in_use == 0
    clock.advance(LEASE_S * 10)
    assert row(store, "w1").status is WorkerStatus.STOPPED, "a stopped worker never turns silent"


def test_the_jobs_of_a_dead_worker_are_recovered_by_their_policy(backend: Backend, gone: ProcessId) -> None:
    store = backend.store
    store.register_worker(registration(process=gone, slots=4))
    retried = submit(store, max_attempts=2)
    claim(store, "w1")
    failed = submit(store)
    claim(store, "w1")
    stopping = submit(store)
    claim(store, "w1")
    store.request_cancel(stopping.id, CancelReason.USER, "alice")
    other = submit(store)
    claim(store, "w2")  # another worker's job is not touched

    message = f"worker w1 was found gone: its process (pid {gone.pid}) has ended"
    recovered = store.recover_dead_worker("w1", gone, message)
    assert recovered is not None
    by_id = {job.id: job for job in recovered}
    assert set(by_id) == {retried.id, failed.id, stopping.id}
    assert by_id[retried.id].status is JobStatus.QUEUED
    assert by_id[failed.id].status is JobStatus.FAILED
    error = by_id[failed.id].error
    assert error is not None
    assert error.message == message
    assert by_id[stopping.id].status is JobStatus.CANCELLED
    cancel = by_id[stopping.id].cancel
    assert cancel is not None
    assert cancel.stop_method is StopMethod.WORKER_LOST
    last = store.events(failed.id)[-1]
    assert (last.type, last.reason, last.actor) == ("worker lost", "worker_lost", "andon")
    assert last.message == f"WorkerLost: {message}"
    assert store.get(other.id).status is JobStatus.RUNNING

    dead = row(store, "w1")
    assert dead.status is WorkerStatus.DEAD
    assert dead.end_message == message
    assert dead.running == 0
    assert store.recover_dead_worker("w1", gone, message) is None, "a dead worker is recovered once"
    assert "w1" not in [worker_id for _, worker_id in store.workers_on(this_machine())]


def test_recovery_names_its_process_a_worker_registered_again_elsewhere_is_not_touched(
    store: StoreEngine, gone: ProcessId
) -> None:
    store.register_worker(registration())  # this (living) process
    submit(store)
    claim(store, "w1")
    assert store.recover_dead_worker("w1", gone, "not this one") is None
    assert row(store, "w1").status is WorkerStatus.ALIVE
    assert row(store, "w1").running == 1


def test_two_lookouts_that_find_one_dead_worker_recover_it_exactly_once(backend: Backend, gone: ProcessId) -> None:
    store = backend.store
    store.register_worker(registration(process=gone))
    jobs = [submit(store) for _ in range(2)]
    for _ in jobs:
        claim(store, "w1")
    peer = backend.peer()
    try:
        barrier = threading.Barrier(2)
        results: list[list[andon.Job] | None] = []

        def recover(on: StoreEngine) -> None:
            barrier.wait()
            results.append(on.recover_dead_worker("w1", gone, "found gone"))

        threads = [threading.Thread(target=recover, args=(on,)) for on in (store, peer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        if peer is not store:
            peer.close()
    assert sorted(results, key=lambda found: found is None)[1] is None
    (winner,) = [found for found in results if found is not None]
    assert sorted(job.id for job in winner) == sorted(job.id for job in jobs)
    for job in jobs:
        lost = [event for event in store.events(job.id) if event.reason == "worker_lost"]
        assert len(lost) == 1, store.events(job.id)
        assert store.get(job.id).status is JobStatus.FAILED


def test_a_lookout_recovers_only_workers_of_this_machine_whose_process_is_gone(
    backend: Backend, gone: ProcessId, zombie: ProcessId
) -> None:
    store = backend.store
    elsewhere = ProcessId(Machine("another-host", "another-boot", this_machine().pid_ns), gone.pid, gone.start)
    reused = ProcessId(this_machine(), this_process().pid, (this_process().start or 0) + 1)
    cases = {"alive": this_process(), "gone": gone, "zombie": zombie, "elsewhere": elsewhere, "reused": reused}
    held = {}
    for name, process in cases.items():
        store.register_worker(registration(name, process))
        held[name] = submit(store)
        claim(store, name)

    recovered = Lookout(store).check()

    assert sorted(job.id for job in recovered) == sorted(held[name].id for name in ("gone", "zombie"))
    statuses = {worker.id: worker.status for worker in store.workers()}
    assert statuses == {
        "alive": WorkerStatus.ALIVE,
        "gone": WorkerStatus.DEAD,
        "zombie": WorkerStatus.DEAD,
        "elsewhere": WorkerStatus.ALIVE,  # another machine: its lease decides
        "reused": WorkerStatus.ALIVE,  # this process is the lookout's own: never judged
    }
    assert Lookout(store).check() == []


def test_a_reused_pid_is_not_taken_for_the_worker(store: StoreEngine) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        process = process_id(child.pid)
        assert process is not None
        assert process.start is not None
        earlier = ProcessId(process.machine, process.pid, process.start - 1)  # the pid's earlier owner
        store.register_worker(registration("w1", earlier))
        assert [job_id for _, job_id in store.workers_on(this_machine())] == ["w1"]
        Lookout(store).check()
        assert row(store, "w1").status is WorkerStatus.DEAD
    finally:
        child.kill()
        child.wait()


def test_registration_prunes_the_rows_of_workers_gone_for_longer_than_kept(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    store.register_worker(registration("stopped-long-ago"))
    store.mark_worker_stopped("stopped-long-ago")
    store.register_worker(registration("silent-long-ago"))
    clock.advance(100)
    store.register_worker(registration("stopped-lately"))
    store.mark_worker_stopped("stopped-lately")
    clock.advance(10)
    store.register_worker(registration("new"), keep_s=50)
    assert sorted(worker.id for worker in store.workers()) == ["new", "stopped-lately"]


def test_a_heartbeat_brings_back_a_living_workers_row(backend: Backend, gone: ProcessId) -> None:
    store = backend.store
    reg = registration()
    store.register_worker(reg)
    store.mark_worker_stopped("w1")  # as a mistaken end would leave it
    store.renew_leases("w1", LEASE_S, [], heartbeat=reg)
    assert row(store, "w1").status is WorkerStatus.ALIVE
    assert row(store, "w1").stopped_at is None


def test_a_user_sees_every_worker_and_its_count_but_only_its_own_job_ids(store: StoreEngine) -> None:
    store.register_worker(registration())
    mine = submit(store, owner="alice")
    claim(store, "w1")
    submit(store, owner="bob")
    claim(store, "w1")
    (seen,) = store.workers(visible_owner="alice")
    assert (seen.running, seen.job_ids) == (2, (mine.id,))


app = andon.App()


@app.job("a")
def a(ctx: andon.Context) -> None:
    ctx.emit({"ran": True})


def test_a_worker_registers_beats_with_its_renewals_and_marks_itself_stopped(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    assert isinstance(clock, ManualClock)
    worker = andon.Worker(app, store, concurrency=3, lease_s=LEASE_S, clock=clock, scheduler=False)
    worker.start()
    try:
        own = row(store, worker.id)
        assert (own.status, own.slots, own.kinds, own.pid) == (WorkerStatus.ALIVE, 3, ("a",), this_process().pid)
        assert own.version == andon.__version__
        began = own.heartbeat_at
        clock.advance(LEASE_S / 3)  # the next renewal is due: it is the heartbeat
        wait_until(lambda: row(store, worker.id).heartbeat_at > began, 10, "the heartbeat with the renewal")
        assert row(store, worker.id).status is WorkerStatus.ALIVE
    finally:
        worker.stop()
    stopped = row(store, worker.id)
    assert stopped.status is WorkerStatus.STOPPED
    assert stopped.stopped_at == clock.now()
