"""Job trees as handlers see them (issue 16): ``ctx.submit`` is a cancel point that never
creates a child after its parent's stop committed, ``wait_children`` waits and is
interrupted by a cancel, a timeout reaches the whole tree, a shutdown leaves the children
to the parent's next attempt, and the same calls work from process-isolated and async
handlers. A real ``Worker`` in this process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import andon
from andon import CancelReason, JobStatus
from andon._cancel import CancelToken
from andon._context import Context
from andon.examples import count, fanout
from tests.postgres import fresh_database
from tests.support import wait_until

pytestmark = [pytest.mark.timeout(120)]

app = andon.App(default_grace=0.5)
app.job("count")(count)
app.job("fanout")(fanout)
app.job("fanout_process", isolation="process")(fanout)


@app.job("count_async")
async def count_async(ctx: andon.Context, n: int = 3) -> dict[str, int]:
    for i in range(n):
        await ctx.sleep_async(0.01)
        ctx.emit({"i": i})
    return {"counted": n}


@app.job("fanout_async")
async def fanout_async(ctx: andon.Context, n: int = 3) -> list[str]:
    for _ in range(n):
        await ctx.submit_async("count_async", {"n": 3})
    ended = await ctx.wait_children_async()
    return [child.status.value for child in ended]


@app.job("spawner")
def spawner(ctx: andon.Context) -> None:
    """Submit children as fast as it can; ``time.sleep`` is not a cancel point, so only
    ``ctx.submit`` can notice the cancel."""
    while True:
        ctx.submit("count", {"n": 1000, "interval_s": 0.05})
        time.sleep(0.01)


@app.job("waits_briefly")
def waits_briefly(ctx: andon.Context) -> str:
    """Start one attached and one detached child, wait for them a moment, and return."""
    ctx.submit("count", {"n": 1000, "interval_s": 0.05})
    ctx.submit("count", {"n": 1000, "interval_s": 0.05}, detached=True)
    try:
        ctx.wait_children(timeout=0.3)
    except andon.WaitTimeout:
        return "gave up waiting"
    return "done"


@app.job("tree_with_timeout", timeout=0.5)
def tree_with_timeout(ctx: andon.Context) -> None:
    ctx.submit_many("count", [{"n": 1000, "interval_s": 0.05}] * 3)
    ctx.wait_children()


def keyed_children(ctx: andon.Context) -> list[str]:
    """Submit a keyed child twice (the second answered by the first), then supersede it."""
    first = ctx.submit("count", {"n": 1000, "interval_s": 0.05}, key="only-one")
    again = ctx.submit("count", {"n": 1000, "interval_s": 0.05}, key="only-one")
    newer = ctx.submit("count", {"n": 1, "interval_s": 0.01}, key="only-one", on_conflict="supersede")
    ended = ctx.wait_children()
    return [first.id, again.id, newer.id, *(f"{c.id}:{c.status.value}" for c in ended)]


app.job("keyed_children")(keyed_children)
app.job("keyed_children_process", isolation="process")(keyed_children)


def delayed_child(ctx: andon.Context) -> float:
    """Schedule a child a moment ahead and wait for it; how far ahead its due time was."""
    child = ctx.submit("count", {"n": 1, "interval_s": 0.01}, delay=0.3)
    [ended] = ctx.wait_children()
    assert ended.started_at is not None
    assert child.due_at is not None
    assert ended.started_at >= child.due_at
    return child.due_at - child.created_at


app.job("delayed_child")(delayed_child)
app.job("delayed_child_process", isolation="process")(delayed_child)


@pytest.fixture(params=["sqlite", "postgres"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[andon.Client]:
    with fresh_database(request.param, tmp_path) as url, andon.connect(url, app, actor="tester") as client:
        yield client


def children_of(client: andon.Client, job_id: str) -> list[andon.Job]:
    return client.store.list_jobs(andon.JobFilter(parents=[job_id]), 1000).items


def test_no_child_is_created_after_the_cancel_of_its_parent_commits(client: andon.Client) -> None:
    with andon.Worker(app, client.store, concurrency=4):
        parent = client.submit("spawner")
        wait_until(lambda: len(children_of(client, parent.id)) >= 5, 30, "five children")
        result = client.cancel(parent.id, wait=True, timeout=30)
        ended = client.get(parent.id)
        assert ended.status is JobStatus.CANCELLED, result
        assert ended.cancel is not None
        requested = ended.cancel.requested_at
        kids = children_of(client, parent.id)
        assert all(kid.created_at <= requested for kid in kids), "a child was created after the cancel"
        assert all(kid.status is JobStatus.CANCELLED for kid in kids)
        assert all(kid.cancel is not None and kid.cancel.reason is CancelReason.PARENT_CANCELLED for kid in kids)


def test_a_timeout_of_the_parent_stops_the_whole_tree(client: andon.Client) -> None:
    with andon.Worker(app, client.store, concurrency=4):
        parent = client.submit("tree_with_timeout")
        ended = client.wait_finished(parent.id, timeout=30)
        assert ended.status is JobStatus.CANCELLED
        assert ended.cancel is not None
        assert ended.cancel.reason is CancelReason.TIMEOUT
        kids = children_of(client, parent.id)
        assert len(kids) == 3
        for kid in kids:
            assert kid.status is JobStatus.CANCELLED
            assert kid.cancel is not None
            assert kid.cancel.reason is CancelReason.PARENT_CANCELLED
            assert "timed out" in (kid.cancel.message or "")


def test_children_left_by_a_parent_that_returns_are_cancelled_unless_detached(client: andon.Client) -> None:
    with andon.Worker(app, client.store, concurrency=4):
        parent = client.submit("waits_briefly")
        ended = client.wait_finished(parent.id, timeout=30)
        assert (ended.status, ended.result) == (JobStatus.SUCCEEDED, "gave up waiting")
        kids = {kid.detached: kid for kid in children_of(client, parent.id)}
        attached = client.wait_finished(kids[False].id, timeout=30)
        assert attached.status is JobStatus.CANCELLED
        assert attached.cancel is not None
        assert attached.cancel.reason is CancelReason.PARENT_ENDED
        assert client.get(kids[True].id).status.is_active  # left running, and the parent says so
        assert any(e.type == "children left running" for e in client.events(parent.id))
        client.cancel(kids[True].id, wait=True, timeout=30)


@pytest.mark.parametrize("kind", ["fanout", "fanout_process"])
def test_a_fanout_waits_for_its_children_and_reads_their_results(client: andon.Client, kind: str) -> None:
    with andon.Worker(app, client.store, concurrency=6):
        parent = client.submit(kind, {"n": 4, "child_params": {"n": 3, "interval_s": 0.01}})
        ended = client.wait_finished(parent.id, timeout=60)
        assert ended.status is JobStatus.SUCCEEDED, ended.error
        assert ended.result == {"children": 4, "succeeded": 4}
        items = client.results(parent.id)
        assert sorted(item.data["child"] for item in items) == sorted(k.id for k in children_of(client, parent.id))
        assert all(item.data["result"] == {"counted": 3} for item in items)


def test_a_process_isolated_fanout_is_cancelled_with_its_tree(client: andon.Client) -> None:
    with andon.Worker(app, client.store, concurrency=6):
        parent = client.submit("fanout_process", {"n": 3, "child_params": {"n": 1000, "interval_s": 0.05}})
        wait_until(lambda: len(children_of(client, parent.id)) == 3, 30, "three children")
        client.cancel(parent.id, wait=True, timeout=30)
        assert client.get(parent.id).status is JobStatus.CANCELLED
        assert all(kid.status is JobStatus.CANCELLED for kid in children_of(client, parent.id))


def test_an_async_handler_submits_and_awaits_children(client: andon.Client) -> None:
    with andon.Worker(app, client.store, concurrency=4):
        parent = client.submit("fanout_async", {"n": 3})
        ended = client.wait_finished(parent.id, timeout=30)
        assert (ended.status, ended.result) == (JobStatus.SUCCEEDED, ["succeeded"] * 3)


def test_after_a_shutdown_the_next_attempt_waits_for_the_children_it_finds(client: andon.Client) -> None:
    worker = andon.Worker(app, client.store, concurrency=4, shutdown_grace_s=0.5)
    worker.start()
    try:
        parent = client.submit("fanout", {"n": 2, "child_params": {"n": 40, "interval_s": 0.05}})
        wait_until(lambda: len(children_of(client, parent.id)) == 2, 30, "two children")
    finally:
        worker.stop()
    requeued = client.get(parent.id)
    assert requeued.status is JobStatus.QUEUED, requeued
    with andon.Worker(app, client.store, concurrency=4):
        ended = client.wait_finished(parent.id, timeout=60)
    assert ended.status is JobStatus.SUCCEEDED, ended.error
    assert ended.attempt == 2
    assert ended.result == {"children": 2, "succeeded": 2}
    assert len(children_of(client, parent.id)) == 2, "the second attempt started the children again"


def test_submit_outside_a_worker_is_a_clear_error() -> None:
    class Sink:
        def emit(self, at: float, encoded: str) -> None: ...
        def progress(self, done: float, total: float | None, message: str | None) -> None: ...
        def child_started(self, pid: int) -> None: ...
        def checkpoint(self, at: float, encoded: str) -> None: ...

    ctx = Context(job_id="j", kind="k", attempt=1, params={}, token=CancelToken(), sink=Sink(), child_grace_s=0.5)
    with pytest.raises(andon.ConfigurationError, match="no store"):
        ctx.submit("count")


@pytest.mark.parametrize("kind", ["keyed_children", "keyed_children_process"])
def test_a_handler_submits_keyed_children(client: andon.Client, kind: str) -> None:
    with andon.Worker(app, client.store, concurrency=4):
        parent = client.submit(kind)
        ended = client.wait_finished(parent.id, timeout=60)
    assert ended.status is JobStatus.SUCCEEDED, ended.error
    first, again, newer, *statuses = ended.result
    assert again == first, "skip answered the active child"
    assert sorted(statuses) == sorted([f"{first}:cancelled", f"{newer}:succeeded"])
    old = client.get(first)
    assert old.cancel is not None
    assert (old.cancel.reason, old.cancel.origin) == (CancelReason.SUPERSEDED, newer)
    assert client.get(newer).parent_id == parent.id


@pytest.mark.parametrize("kind", ["delayed_child", "delayed_child_process"])
def test_a_handler_schedules_a_child(client: andon.Client, kind: str) -> None:
    with andon.Worker(app, client.store, concurrency=3):
        parent = client.submit(kind)
        ended = client.wait_finished(parent.id, timeout=60)
    assert ended.status is JobStatus.SUCCEEDED, ended.error
    assert ended.result == pytest.approx(0.3, abs=0.01)
