"""A worker shut down while 50 jobs run: none is lost, each is finished or requeued, in time.

Half the jobs end within the shutdown grace and succeed; the others are stopped with reason
``shutdown`` and go back to the queue (not a failure), keeping their items; a second
worker then runs them to the end. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import andon
from tests.faults.handlers import app as faults_app
from tests.postgres import fresh_schema
from tests.support import wait_until

pytestmark = pytest.mark.slow

JOBS = 50
GRACE_S = 1.0
STOP_BOUND_S = 5.0
"""Past the grace, a shutdown that takes this long to stop the work is a bug."""


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[andon.Store]:
    if request.param == "sqlite":
        store = andon.open_store(f"sqlite:///{request.getfixturevalue('tmp_path') / 'andon.db'}")
        try:
            yield store
        finally:
            store.close()
        return
    with fresh_schema() as url:
        store = andon.open_store(url)
        try:
            yield store
        finally:
            store.close()


@pytest.mark.timeout(90)
def test_shutdown_with_50_running_jobs_loses_none(any_store: andon.Store) -> None:
    client = andon.Client(any_store, faults_app, actor="test")
    jobs = [
        client.submit(
            "long_then_short_process" if i % 10 == 0 else "long_then_short",
            {"first_s": 0.3 if i % 2 else 60.0},
        )
        for i in range(JOBS)
    ]
    worker = andon.Worker(faults_app, any_store, concurrency=JOBS, lease_s=30.0)
    worker.start()
    try:
        wait_until(lambda: sum(1 for j in jobs if client.get(j.id).items_count > 0) == JOBS, 30, "all 50 jobs to run")
        began = time.monotonic()
        worker.stop(grace_s=GRACE_S)
        took = time.monotonic() - began
    finally:
        worker.stop(grace_s=0)
    assert took < GRACE_S + STOP_BOUND_S, f"the shutdown took {took:.1f} s"

    after_stop = {j.id: client.get(j.id) for j in jobs}
    states = {job.status for job in after_stop.values()}
    assert states <= {andon.JobStatus.SUCCEEDED, andon.JobStatus.QUEUED}, states
    requeued = [job for job in after_stop.values() if job.status is andon.JobStatus.QUEUED]
    assert len(requeued) == JOBS // 2, "the long jobs are the ones put back"
    for job in requeued:
        events = client.events(job.id)
        assert events[-1].type == "requeued", events[-1]
        assert any(e.reason == "shutdown" for e in events), events
        assert job.failures == 0, "a shutdown is not a failure"
        assert job.items_count > 0, "the items of the interrupted attempt were lost"
    seen = {job.id: [item.data for item in client.results(job.id)] for job in requeued}

    with andon.Worker(faults_app, any_store, concurrency=8):
        for job in jobs:
            done = client.wait_finished(job.id, timeout=30)
            assert done.status is andon.JobStatus.SUCCEEDED, done
    for job_id, items in seen.items():
        kept = [item.data for item in client.results(job_id)]
        assert kept[: len(items)] == items, "items of the first attempt changed"
        assert client.get(job_id).attempt == 2
