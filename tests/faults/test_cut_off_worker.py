"""A worker cut off from the store past its lease: its attempt's end and the output the
store refused join the job's history (issue 12, item 11).

Worker A runs a job that emits an item every 20 ms; then A alone is cut off from the store
(every store call of A's raises ``StorageUnavailable``, as a dropped link does, while worker
B's store object is untouched). A stops the work itself at two thirds of its lease
(``lease_lost``); B recovers the job after the lease (``worker_lost``) and runs attempt 2.
When A's link comes back, its settlement is refused (it no longer holds the job), and the
history gains one event saying how attempt 1 ended and how many of its items were refused.

The items themselves are not stored: attempt 2 continues the job's item sequence, so an
ended attempt's late items have no place in it. Their number is exact: the handler notes
each item ``ctx.emit`` accepted in a side file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import andon
from andon._storage import Store
from andon._storage._postgres import PostgresStore
from andon._storage._rows import LOST_ATTEMPT_EVENT
from tests.postgres import fresh_schema
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

LEASE_S = 1.5
app = andon.App(default_grace=0.5)


@app.job("ticker", retry=andon.Retry(max_attempts=2))
def ticker(ctx: andon.Context, log: str) -> dict[str, int]:
    steps = 10 if ctx.attempt > 1 else 1_000_000
    for i in range(steps):
        ctx.emit({"attempt": ctx.attempt, "i": i})
        with open(log, "a") as accepted:
            accepted.write(f"{ctx.attempt} {i}\n")
        ctx.sleep(0.02)
    return {"steps": steps}


class Link:
    """Cuts one store object off (each call raises) and heals it again."""

    METHODS = (
        "claim_many",
        "settle_many",
        "settle_and_claim",
        "write_progress",
        "renew_leases",
        "recover_lost",
        "cancel_notices",
        "record_lost_attempt",
    )

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
        self.cut = threading.Event()
        for name in self.METHODS:
            monkeypatch.setattr(store, name, self._guard(getattr(store, name)))

    def _guard(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:  # Any: whatever the method takes
            if self.cut.is_set():
                raise andon.StorageUnavailable("the link to the store is cut (test)")
            return real(*args, **kwargs)

        return call


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, db_path: Path) -> Iterator[tuple[Store, Store]]:
    if request.param == "sqlite":
        with andon.SqliteStore(str(db_path)) as cut_off, andon.SqliteStore(str(db_path)) as healthy:
            yield cut_off, healthy
        return
    with fresh_schema() as url, PostgresStore(url) as cut_off, PostgresStore(url) as healthy:
        yield cut_off, healthy


def test_a_cut_off_attempts_end_and_refused_output_join_the_history(
    monkeypatch: pytest.MonkeyPatch, stores: tuple[Store, Store], tmp_path: Path
) -> None:
    cut_off, healthy = stores
    link = Link(monkeypatch, cut_off)
    log = tmp_path / "accepted.txt"
    client = andon.Client(healthy, app, actor="test")
    a = andon.Worker(app, cut_off, concurrency=1, lease_s=LEASE_S, shutdown_grace_s=1.0, worker_id="worker-a")
    b = andon.Worker(app, healthy, concurrency=1, lease_s=LEASE_S, shutdown_grace_s=1.0, worker_id="worker-b")
    a.start()
    try:
        job = client.submit("ticker", {"log": str(log)})
        wait_until(lambda: client.get(job.id).items_count >= 10, timeout=30, what="attempt 1's first items")
        b.start()
        link.cut.set()
        ended = client.wait_finished(job.id, timeout=60)
        assert (ended.status, ended.attempt) == (andon.JobStatus.SUCCEEDED, 2)
        link.cut.clear()
        wait_until(
            lambda: any(e.type == LOST_ATTEMPT_EVENT for e in client.events(job.id)),
            timeout=30,
            what="the lost attempt's end in the history",
        )
    finally:
        link.cut.clear()
        a.stop()
        b.stop()

    accepted = [line.split() for line in log.read_text().splitlines()]
    emitted_by_first = sum(1 for attempt, _ in accepted if attempt == "1")
    items = client.results(job.id)
    stored_of_first = sum(1 for item in items if item.attempt == 1)
    assert [item.data["i"] for item in items if item.attempt == 2] == list(range(10))

    events = client.events(job.id)
    (lost,) = [e for e in events if e.type == LOST_ATTEMPT_EVENT]
    assert lost.attempt == 1
    assert lost.actor == "worker:worker-a"
    assert lost.reason == "lease_lost"
    assert lost.message is not None
    assert f"{emitted_by_first - stored_of_first} item(s)" in lost.message, (lost.message, emitted_by_first)
    assert emitted_by_first > stored_of_first, "the cut came before any refused output: nothing tested"
    assert any(e.reason == "worker_lost" for e in events)
    assert lost.from_status == lost.to_status  # one event, no change of state
