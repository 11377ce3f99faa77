"""SQLite under abuse: ``andon serve`` killed with SIGKILL mid-write, and many writers at once.

Both use real processes (``andon serve`` and ``andon worker`` on one file) and the real HTTP
API; the jobs are the example app's ``count``, which emits an item every few milliseconds.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.acceptance.serving import Served, serve
from tests.subprocesses import WorkerProcess
from tests.support import wait_until

pytestmark = pytest.mark.slow

FAST = {"n": 100_000, "interval_s": 0.002}
"""Emits about 500 items a second until cancelled or killed."""


def all_items(served: Served, job_id: str) -> list[dict[str, object]]:
    """Every result item of the job, through the API (1,000 a page)."""
    items: list[dict[str, object]] = []
    while True:
        status, page = served.request("GET", f"/api/v1/jobs/{job_id}/results?offset={len(items)}&limit=1000")
        assert status == 200, page
        items.extend(page["items"])
        if len(page["items"]) < 1000:
            return items


def integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.timeout(90)
def test_kill_9_serve_mid_writes_then_restart(tmp_path: Path) -> None:
    db = tmp_path / "andon.db"
    url = f"sqlite:///{db}"
    first = serve(tmp_path, "--db", url, "--no-demo-jobs", "--concurrency", "3")
    try:
        running = [first.request("POST", "/api/v1/jobs", {"kind": "count", "params": FAST})[1]["id"] for _ in range(3)]
        wait_until(
            lambda: all(first.request("GET", f"/api/v1/jobs/{i}")[1]["status"] == "running" for i in running),
            15,
            "three jobs to run",
        )
        acknowledged: list[str] = []
        stop = threading.Event()

        def submit_until_killed() -> None:  # heavy writes from the API side too
            while not stop.is_set() and len(acknowledged) < 40:
                try:
                    status, body = first.request(
                        "POST", "/api/v1/jobs", {"kind": "count", "params": {"n": 3, "interval_s": 0.001}}
                    )
                except OSError:
                    return  # the server is gone
                if status == 201:
                    acknowledged.append(body["id"])

        writer = threading.Thread(target=submit_until_killed)
        writer.start()
        time.sleep(1.0)
        seen = {job_id: all_items(first, job_id) for job_id in running}
        events_seen = {job_id: first.request("GET", f"/api/v1/jobs/{job_id}/events")[1]["items"] for job_id in running}
        first.process.kill()  # SIGKILL in the middle of the writes
        first.process.wait(10)
        stop.set()
        writer.join(15)
    finally:
        first.kill()
    assert acknowledged, "no submission went through before the kill"

    assert integrity(db) == "ok"
    # Without a worker: the server's lookout finds the dead server's process gone (same
    # machine) and recovers its jobs at once, long before their 30 s leases would run out.
    second = serve(tmp_path, "--db", url, "--no-worker")
    try:
        for job_id in acknowledged:
            status, job = second.request("GET", f"/api/v1/jobs/{job_id}")
            assert status == 200, f"acknowledged job {job_id} is gone: {job}"
        wait_until(
            lambda: all(second.request("GET", f"/api/v1/jobs/{i}")[1]["status"] == "failed" for i in running),
            15,
            "the dead server's jobs to be recovered by the new server's lookout",
        )
        for job_id in running:
            job = second.request("GET", f"/api/v1/jobs/{job_id}")[1]
            assert job["error"]["type"] == "WorkerLost", job["error"]
            assert f"(pid {first.pid} on " in job["error"]["message"], job["error"]
            items = all_items(second, job_id)
            before = seen[job_id]
            assert items[: len(before)] == before, "items stored before the kill changed or were lost"
            assert job["items_count"] >= len(seen[job_id])
            events = second.request("GET", f"/api/v1/jobs/{job_id}/events")[1]["items"]
            assert events[: len(events_seen[job_id])] == events_seen[job_id], "the history changed"
            assert events[-1]["reason"] == "worker_lost", events[-1]

        assert second.stop() == 0, second.output()
    finally:
        second.kill()

    # Started again with its worker, it runs every queued job the first one acknowledged.
    third = serve(tmp_path, "--db", url, "--no-demo-jobs", "--concurrency", "3")
    try:

        def all_succeeded() -> bool:
            return all(third.request("GET", f"/api/v1/jobs/{i}")[1]["status"] == "succeeded" for i in acknowledged)

        wait_until(all_succeeded, 30, "every acknowledged job to run on the restarted server", interval=0.1)
        assert third.stop() == 0, third.output()
    finally:
        third.kill()
    assert integrity(db) == "ok"
    for output in (second.output(), third.output()):
        assert "database is locked" not in output
        assert "Traceback" not in output


@pytest.mark.timeout(90)
def test_many_writers_on_one_sqlite_file_never_show_database_is_locked(tmp_path: Path) -> None:
    """The API (with its worker) and three worker processes write one file while clients
    submit, cancel and read through the API: no request fails, no log says the file was locked."""
    url = f"sqlite:///{tmp_path / 'andon.db'}"
    server = serve(tmp_path, "--db", url, "--no-demo-jobs", "--concurrency", "3")
    workers = [WorkerProcess(tmp_path, url, name=f"worker{i}", concurrency=3) for i in range(3)]
    statuses: Counter[int] = Counter()
    submitted: list[str] = []
    lock = threading.Lock()
    try:

        def client(seed: int) -> None:
            end = time.monotonic() + 4.0
            n = 0
            while time.monotonic() < end:
                n += 1
                params = {"n": 60, "interval_s": 0.002} if n % 3 else {"n": 2000, "interval_s": 0.002}
                status, body = server.request("POST", "/api/v1/jobs", {"kind": "count", "params": params})
                with lock:
                    statuses[status] += 1
                    if status == 201:
                        submitted.append(body["id"])
                if status == 201 and n % 3 == 0:
                    status, _ = server.request("POST", f"/api/v1/jobs/{body['id']}/cancel", {})
                    with lock:
                        statuses[status] += 1
                for path in ("/api/v1/jobs?limit=20", f"/api/v1/jobs/{body['id']}/results?limit=50"):
                    status, _ = server.request("GET", path)
                    with lock:
                        statuses[status] += 1

        clients = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(60)
        assert set(statuses) <= {200, 201}, f"some requests failed: {dict(statuses)}"

        def all_done() -> bool:
            status, page = server.request("GET", "/api/v1/jobs?status=queued&status=running&status=cancelling&limit=1")
            return status == 200 and not page["items"]

        wait_until(all_done, 60, "every job to end", interval=0.1)
        ran_by: Counter[str] = Counter()
        for job_id in submitted:
            events = server.request("GET", f"/api/v1/jobs/{job_id}/events")[1]["items"]
            ran_by.update(str(e["actor"]) for e in events if e["type"] == "started")
        assert len(ran_by) >= 3, f"the work was not shared between the processes: {ran_by}"
        for worker in workers:
            assert worker.stop(timeout=20) == 0, worker.output()
        assert server.stop() == 0, server.output()
    finally:
        for worker in workers:
            worker.kill()
        server.kill()
    outputs = [server.output(), *(w.output() for w in workers)]
    for output in outputs:
        assert "database is locked" not in output
        assert "Traceback" not in output
    print(f"{len(submitted)} jobs, requests {dict(statuses)}, ran by {dict(ran_by)}")
