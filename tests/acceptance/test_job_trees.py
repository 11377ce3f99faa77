"""Job trees with real processes (issue 16): a cancel of a parent stops every job it started,
and every process they started, and the parent is recorded cancelled only after the last of
them stopped.

A separate ``andon worker`` process runs the example kind ``fanout`` with five
process-isolated children; each child starts a grandchild with plain ``subprocess.Popen``
(not ``ctx.popen``: one the handler does not tell andon about) and emits items until it is
stopped. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon import CancelReason, JobStatus
from andon.examples import fanout
from tests.faults.processes import job_processes, marked_processes
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess
from tests.support import cmdline, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

app = andon.App(default_grace=1.0)
app.job("fanout")(fanout)


@app.job("family_member", isolation="process")
def family_member(ctx: andon.Context, marker: str) -> None:
    """Start a grandchild the handler keeps to itself, then emit an item every 50 ms."""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])
    i = 0
    while True:
        ctx.emit({"i": i})
        i += 1
        ctx.sleep(0.05)


def grandchildren(marker: str) -> list[int]:
    """The grandchildren alive now (their command line names the marker)."""
    return [pid for pid in marked_processes(marker) if marker in cmdline(pid)]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_cancelling_a_fanout_stops_all_six_jobs_and_every_process(db: str, tmp_path: Path) -> None:
    marker = f"andon-tree-{tmp_path.name}"
    worker = WorkerProcess(tmp_path, db, concurrency=8, app=f"{__name__}:app", marker=marker)
    try:
        worker.wait_started(60)
        with andon.connect(db, app, actor="tester") as client:
            params = {"n": 5, "child_kind": "family_member", "child_params": {"marker": marker}}
            parent = client.submit("fanout", params)

            def children_at_work() -> list[andon.Job] | None:
                kids = client.store.list_jobs(andon.JobFilter(parents=[parent.id]), 10).items
                ready = len(kids) == 5 and all(k.items_count >= 2 for k in kids)
                return kids if ready and len(grandchildren(marker)) == 5 else None

            kids = wait_until(children_at_work, 60, "5 children at work, each with its grandchild")
            assert kids is not None
            result = client.cancel(parent.id, wait=True, timeout=30)
            ended = client.get(parent.id)
            assert result.job.status is JobStatus.CANCELLED or ended.status is JobStatus.CANCELLED
            assert ended.status is JobStatus.CANCELLED, ended
            assert ended.cancel is not None
            assert ended.cancel.reason is CancelReason.USER
            assert ended.cancel.stopped_at is not None
            children = [client.get(k.id) for k in kids]
            for child in children:
                assert child.status is JobStatus.CANCELLED, child
                assert child.cancel is not None
                assert child.cancel.reason is CancelReason.PARENT_CANCELLED
                assert child.cancel.origin == parent.id
                assert child.cancel.stopped_at is not None
                # The parent is cancelled only once its last child has stopped.
                assert child.cancel.stopped_at <= ended.cancel.stopped_at
                assert child.items_count >= 2, "the items a child emitted before the stop are kept"
                assert len(client.results(child.id)) == child.items_count
            # No job process and no grandchild is left (the worker and its forkserver stay).
            wait_until(
                lambda: not grandchildren(marker) and not job_processes(worker.pid),
                10,
                "every job process and grandchild to be gone",
            )
            types = [e.type for e in client.events(parent.id)]
            assert types.count("cancelled") == 1
        assert worker.stop() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
        wait_until(lambda: not marked_processes(marker), 10, "every process of the worker to be gone")
    finally:
        worker.kill()
        for pid in marked_processes(marker):
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_a_failing_child_fails_its_fanout_and_cancels_the_siblings(db: str, tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path, db, concurrency=8, app="andon.examples:app")
    try:
        worker.wait_started(60)
        from andon.examples import app as examples

        with andon.connect(db, examples, actor="tester") as client:
            slow = client.submit("fanout", {"n": 3, "child_params": {"n": 1000, "interval_s": 0.05}})
            wait_until(
                lambda: client.store.child_counts([slow.id]).get(slow.id, {}).get(JobStatus.RUNNING) == 3,
                60,
                "3 counting children",
            )
            failing = client.submit(
                "fanout", {"n": 2, "child_kind": "fail", "child_params": {"message": "bad row"}, "fail_fast": True}
            )
            ended = client.wait_finished(failing.id, timeout=60)
            assert ended.status is JobStatus.FAILED
            assert ended.error is not None
            assert ended.error.type == "ChildFailed"
            assert "bad row" in ended.error.message
            assert client.get(slow.id).status is JobStatus.RUNNING  # another tree is untouched
            client.cancel(slow.id, wait=True, timeout=30)
            assert client.get(slow.id).status is JobStatus.CANCELLED
        assert worker.stop() == 0, worker.output()
    finally:
        worker.kill()
