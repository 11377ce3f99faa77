"""``pause --now`` with 20 running jobs, then unpause (issue 15), with real worker processes.

Two ``andon worker`` processes run 20 ``count`` jobs (the example kind: emit each number,
then checkpoint the next) at once; a separate client pauses the kind with ``now=True``.
Every job stops (reason ``paused``) and goes back to the queue with the items up to its
checkpoint, and none is claimed while the kind stays paused. Unpaused, every job goes on
from its checkpoint and finishes: its items are exactly ``0..n-1``, each once, and its
history shows the pause stop, the requeue with where it resumes from, and the new attempt.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon.examples import app as example_app
from tests.job_checks import assert_ended_once, assert_items_numbered
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

JOBS = 20
N = 400
INTERVAL_S = 0.02
"""Eight seconds of counting a job: all 20 are still running when the pause comes."""
RESUMES_FROM = re.compile(r"resumes from the checkpoint of attempt 1, after item (\d+)")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def workers(db: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    processes = [WorkerProcess(tmp_path, db, name=f"worker{i}", concurrency=JOBS // 2) for i in range(2)]
    try:
        for process in processes:
            process.wait_started(60)
        yield processes
        for process in processes:
            assert process.stop() == 0, process.output()
            assert "Traceback" not in process.output(), process.output()
    finally:
        for process in processes:
            process.kill()


def test_pause_now_then_unpause_finishes_every_job_with_each_item_once(db: str, workers: list[WorkerProcess]) -> None:
    with (
        andon.connect(db, example_app, actor="tester") as client,
        andon.connect(db, example_app, actor="ops") as ops,
    ):
        ids = [job.id for job in client.submit_many("count", [{"n": N, "interval_s": INTERVAL_S}] * JOBS)]
        wait_until(
            lambda: all(j.status is andon.JobStatus.RUNNING and j.items_count >= 3 for j in map(client.get, ids)),
            90,
            "all 20 jobs to run and count",
            interval=0.05,
        )

        paused = ops.pause("count", now=True, message="maintenance")
        assert paused.changed
        assert sorted(job.id for job in paused.stopping) == sorted(ids)
        wait_until(
            lambda: all(client.get(job_id).status is andon.JobStatus.QUEUED for job_id in ids),
            60,
            "every job to stop and go back to the queue",
            interval=0.05,
        )
        assert [p.kind for p in ops.paused_kinds()] == ["count"]
        held = {job_id: client.get(job_id) for job_id in ids}
        for job in held.values():
            # Back in the queue with exactly the items up to its checkpoint.
            assert job.checkpoint is not None, job
            assert job.checkpoint.state == {"next": job.checkpoint.items}, job
            assert job.items_count == job.checkpoint.items, job
            assert [item.data["i"] for item in client.results(job.id)] == list(range(job.items_count)), job
        time.sleep(1.0)  # two idle polls of each worker: a paused kind is not claimed
        assert all(client.get(job_id).attempt == 1 for job_id in ids), "claimed while its kind was paused"

        assert ops.unpause("count") is True
        for job_id in ids:
            finished = client.wait_finished(job_id, timeout=120)
            check_job(client, finished, held[job_id])


def check_job(client: andon.Client, job: andon.Job, held: andon.Job) -> None:
    context = f"job {job.id} ({job.status.value}, {job.attempt} attempts)"
    events = client.events(job.id)
    items = client.results(job.id)
    assert_ended_once(job, events, context)
    assert job.status is andon.JobStatus.SUCCEEDED, f"{context}: {events[-3:]}"
    assert job.attempt == 2, context
    assert_items_numbered(job, items, context)
    assert [item.data["i"] for item in items] == list(range(N)), f"{context}: an item is missing or twice"
    assert held.checkpoint is not None
    resumed_at = held.checkpoint.items
    assert [item.attempt for item in items] == [1] * resumed_at + [2] * (N - resumed_at), context

    types = [e.type for e in events]
    stop = next(e for e in events if e.type == "cancel requested")
    assert (stop.reason, stop.actor, stop.message) == ("paused", "ops", "maintenance"), stop
    requeued = next(e for e in events if e.type == "requeued (paused)")
    assert requeued.to_status is andon.JobStatus.QUEUED, requeued
    assert requeued.attempt == 1, requeued
    match = RESUMES_FROM.search(requeued.message or "")
    assert match is not None, f"{context}: {requeued}"
    assert int(match.group(1)) == resumed_at, f"{context}: {requeued}"
    unpaused = next(e for e in events if e.type == "kind unpaused")
    started = [e for e in events if e.type == "started"]
    assert [e.attempt for e in started] == [1, 2], context
    assert stop.seq < requeued.seq < unpaused.seq < started[1].seq, f"{context}: {types}"
