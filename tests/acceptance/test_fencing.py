"""Fencing in the worker, on any store: work whose lease is gone stops by itself.

Two ways a worker learns it must stop: its renewal says another party recovered the job
(here), or it cannot renew at all for two thirds of its lease (``test_postgres_faults.py``,
where a real worker is really cut off from PostgreSQL). Either way the handler gets a
``lease_lost`` cancel and stops, so the job does not run in two places at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)

app = andon.App(default_grace=0.5)
stops: dict[str, tuple[float, str | None]] = {}
started = threading.Event()


@app.job("long")
def long(ctx: andon.Context) -> None:
    started.set()
    try:
        while True:
            ctx.sleep(0.01)
            ctx.emit({"at": time.time()})
    except andon.Cancelled as stop:
        stops[ctx.job_id] = (time.time(), stop.reason.value if stop.reason else None)
        raise


@pytest.fixture
def worker(db_path: Path) -> Iterator[andon.Worker]:
    with andon.SqliteStore(str(db_path)) as store:
        runner = andon.Worker(app, store, concurrency=1, lease_s=1.5, shutdown_grace_s=0.5)
        runner.start()
        try:
            yield runner
        finally:
            runner.stop()


def test_a_job_recovered_elsewhere_is_stopped_at_the_next_renewal(db_path: Path, worker: andon.Worker) -> None:
    started.clear()
    with andon.SqliteStore(str(db_path)) as store:
        client = andon.Client(store, app, actor="test")
        job = client.submit("long")
        assert started.wait(15)
        # Another party believes the worker is gone (its clock says the lease ran out) and
        # recovers the job; the worker, alive after all, finds out when it renews.
        future = andon.ManualClock(time.time() + 3600)
        with andon.SqliteStore(str(db_path), clock=future) as elsewhere:
            [recovered] = elsewhere.recover_lost()
        recovered_at = time.time()
        assert recovered.id == job.id
        assert recovered.status is andon.JobStatus.FAILED
        wait_until(lambda: job.id in stops, worker.lease_s, "the worker to stop the recovered job")
        stopped_at, reason = stops[job.id]
        assert reason == "lease_lost"
        assert stopped_at - recovered_at < worker.lease_s / 3 + 1.0
        wait_until(lambda: not worker.running_job_ids, 10, "the attempt to end")
        # The store refused the late settlement: the recovery's verdict stands, and nothing
        # the stopped attempt emitted after the recovery was accepted.
        final = client.get(job.id)
        assert final.status is andon.JobStatus.FAILED
        assert final.error is not None
        assert final.error.type == "WorkerLost"
        assert all(item.at <= recovered_at for item in client.results(job.id))
        # The worker goes on serving.
        started.clear()
        again = client.submit("long")
        assert started.wait(15), "the worker stopped serving"
        assert client.cancel(again.id, wait=True, timeout=10).job.status is andon.JobStatus.CANCELLED
