"""``supersede`` end to end (issue 16): a keyed job running in a process-isolated handler, with
a child process started through ``ctx.popen``, is superseded by a new submit with its key. The
first must end ``cancelled`` (reason ``superseded``, naming the new job) with every process
gone and its items kept, and only then the second may run, and succeed.

A real :class:`andon.Worker` over each store (SQLite file, PostgreSQL); the processes are
looked at in ``/proc``, not only in andon's records. The handler is a module-level function
so that the process runtime can import it in its child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon._storage._postgres import PostgresStore
from tests import support
from tests.job_checks import assert_ended_once, assert_items_numbered, assert_stopped_within
from tests.postgres import fresh_schema
from tests.support import proc_stat, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

app = andon.App(default_grace=0.5)


@app.job("rebuild", isolation="process")
def rebuild(ctx: andon.Context, hold: bool = True) -> str:
    """Starts a shell with a background and a foreground child, emits a few items, and (with
    ``hold``) waits in a checkpoint for a minute; without it, ends at once."""
    if not hold:
        ctx.emit({"handler_pid": os.getpid(), "began": time.time()})
        return "rebuilt"
    child = ctx.popen(["sh", "-c", "sleep 300 & sleep 300"])
    for i in range(3):
        ctx.emit({"i": i, "group": child.pid, "handler_pid": os.getpid()})
    ctx.sleep(60)
    return "never"


def group_members(pgrp: int) -> list[int]:
    """Live processes (zombies excluded) in process group ``pgrp``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(entry.name)
            if stat is not None and stat[2] == pgrp and stat[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.fixture(params=["sqlite", "postgres"])
def keyed_store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[andon.Store]:
    with contextlib.ExitStack() as cleanup:
        if request.param == "sqlite":
            store: andon.Store = andon.SqliteStore(str(db_path))
        else:
            store = PostgresStore(cleanup.enter_context(fresh_schema()))
        store.open()
        cleanup.callback(store.close)
        yield store


def test_supersede_stops_the_running_process_tree_before_the_new_job_runs(keyed_store: andon.Store) -> None:
    client = andon.Client(keyed_store, app, actor="test")
    worker = andon.Worker(app, keyed_store, concurrency=2, shutdown_grace_s=0.5)
    worker.start()
    group = None
    try:
        first = client.submit("rebuild", key="nightly", on_conflict="supersede")
        items = support.wait_items(client, first.id, 3)
        group, handler_pid = items[0].data["group"], items[0].data["handler_pid"]
        wait_until(lambda: len(group_members(group)) >= 2, 5, f"the shell's children in group {group}")

        second = client.submit_once("rebuild", {"hold": False}, key="nightly", on_conflict="supersede")
        assert second.created
        assert [job.id for job in second.superseded] == [first.id]
        assert second.superseded[0].status is andon.JobStatus.CANCELLING

        done = client.wait_finished(second.job.id, timeout=30)
        stopped = client.get(first.id)
        # The first ended cancelled, superseded by the second, and only then did the second start.
        assert stopped.status is andon.JobStatus.CANCELLED
        assert stopped.cancel is not None
        assert stopped.cancel.reason is andon.CancelReason.SUPERSEDED
        assert stopped.cancel.origin == second.job.id
        assert stopped.cancel.message is not None
        assert second.job.id in stopped.cancel.message
        assert stopped.finished_at is not None
        assert done.started_at is not None
        # The second's work began after the first's work had stopped: stopped_at is noted when
        # the first's process ended, before its end was committed, and the second could be
        # claimed only after that commit. (The store's started_at and finished_at are each
        # stamped just before their own transaction, so they may be a few ms out of order.)
        assert stopped.cancel.stopped_at is not None
        [began] = [item.data["began"] for item in client.results(second.job.id)]
        assert began >= stopped.cancel.stopped_at
        assert (done.status, done.result) == (andon.JobStatus.SUCCEEDED, "rebuilt")
        # Its items are kept, numbered, none after the stop; it ended once.
        kept = client.results(first.id)
        assert [item.data["i"] for item in kept] == [0, 1, 2]
        assert_items_numbered(stopped, kept, "superseded job")
        assert_stopped_within(stopped.cancel, kept, 10.0, "superseded job")
        assert_ended_once(stopped, client.events(first.id), "superseded job")
        # No process of it is left: not the shell's group, not the handler's process.
        wait_until(lambda: not group_members(group), 5, f"every process of group {group} to be gone")
        wait_until(lambda: proc_stat(handler_pid) is None, 5, f"handler process {handler_pid} to be gone")
    finally:
        worker.stop()
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)  # leave nothing behind, even when the test fails
