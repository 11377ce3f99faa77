"""The statements a SQLite worker runs for every claim and every settled batch go straight to
their rows by a selective index; none walks the status index through every queued job.

SQLite has no statistics unless asked (andon never runs ANALYZE), so its planner picks an
index by the shape of the statement alone, and ``status IN ('queued', 'running', ...)``
can look as good to it as ``parent_id IN (...)``. That happened once: the batch query for
ended jobs with active children walked all queued jobs at every settlement, which halved
no-op throughput with 10,000 queued (found by ``benchmarks/throughput.py``; the plan is
now pinned with ``INDEXED BY``). The plan of each hot statement is checked here, where a
change of statement or schema shows at once rather than as a slower benchmark.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest

from andon import open_store
from andon._storage._sql import read_blocks

HOT: dict[str, str] = {
    "claim": "USING INDEX andon_jobs_queue",
    "start_claimed": "id=?)",
    "settle": "(id=?)",
    "with_active_children": "USING INDEX andon_jobs_parent (parent_id=?)",
    "awaiting_done": "id=?)",
    "renew_leases": "USING INDEX andon_jobs_held (worker_id=?)",
    "withdraw_fresh": "(id=?)",
}
"""Statement name -> what a step of its plan on ``andon_jobs`` must say (the index it goes by)."""

WALKS = re.compile(r"^SCAN \w+$|andon_jobs_status \(status=\?\)$")
"""A step that reads a whole table or a whole status: every queued job, at scale."""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("plans") / "plans.db"
    open_store(f"sqlite:///{path}").close()  # creates the schema
    conn = sqlite3.connect(path)
    yield conn
    conn.close()


def plan(db: sqlite3.Connection, statement: str) -> list[str]:
    params = {name: '["x"]' for name in re.findall(r":(\w+)", statement)}
    return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, params)]


@pytest.mark.parametrize("name", sorted(HOT))
def test_a_hot_statement_searches_by_its_index(db: sqlite3.Connection, name: str) -> None:
    for statement in read_blocks("queries_sqlite.sql")[name]:
        steps = plan(db, statement)
        searches = [step for step in steps if re.match(r"(SEARCH|SCAN) (?!json_each)", step)]
        assert searches, steps
        assert any(HOT[name] in step for step in searches), f"{name}: {steps}"
        assert not [step for step in steps if WALKS.search(step)], f"{name} walks every job: {steps}"


def test_the_check_sees_a_walk(db: sqlite3.Connection) -> None:
    """The statement as it was before its index was pinned: the check above would fail on it."""
    before = (
        "SELECT DISTINCT parent_id AS id FROM andon_jobs WHERE parent_id IN (SELECT value FROM json_each(:ids))"
        " AND status IN ('queued', 'running', 'cancelling')"
    )
    assert [step for step in plan(db, before) if WALKS.search(step)]
