"""Helpers shared by the test tiers: bounded polling (of anything, and of a job) and a look
at processes in /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import andon
from andon._ids import new_job_id
from andon._jobs import Outcome, OutcomeKind
from andon._storage import JobFilter, NewJob
from andon._storage._engine import StoreEngine

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str = "the condition", interval: float = 0.01) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    Fails naming ``what`` if nothing true came within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return value


def wait_status(client: andon.Client, job_id: str, status: andon.JobStatus, timeout: float) -> andon.Job:
    """Wait until the job is in ``status``; returns it as read then."""

    def in_status() -> andon.Job | None:
        job = client.get(job_id)
        return job if job.status is status else None

    job = wait_until(in_status, timeout, f"job {job_id} to be {status.value}")
    assert job is not None  # wait_until returns only something true
    return job


def wait_items(client: andon.Client, job_id: str, n: int = 1, timeout: float = 20.0) -> list[andon.ResultItem]:
    """Wait until the job has at least ``n`` stored items (so it has run); returns them."""
    wait_until(lambda: client.get(job_id).items_count >= n, timeout, f"{n} item(s) of job {job_id}")
    return client.results(job_id)


def proc_stat(pid: int | str) -> tuple[str, int, int] | None:
    """``(state, ppid, pgrp)`` from ``/proc/<pid>/stat``, or ``None`` if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie has ended; only its entry is left)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(root: int) -> list[int]:
    """Live (not zombie) descendants of ``root``, found through their parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(entry)
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return [pid for pid in found if is_alive(pid)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def stopped_by_cancel(store: StoreEngine, kind: str, seconds: float, method: andon.StopMethod) -> None:
    """A job of ``kind`` that a cancel stopped ``seconds`` after the request, by ``method``,
    written through the store as a worker would (known stop times, no waiting)."""
    job = store.submit([NewJob(id=new_job_id(), kind=kind, params={})], actor="tester")[0]
    running = store.claim("stats-worker", [kind], 30.0)
    assert running is not None
    assert running.id == job.id
    asked = store.request_cancel(job.id, andon.CancelReason.USER, by=None).job.cancel
    assert asked is not None
    outcome = Outcome(OutcomeKind.STOPPED, stop_method=method, stopped_at=asked.requested_at + seconds)
    store.settle("stats-worker", running.attempt, job.id, outcome, None)


def every_job(store: andon.Store) -> list[andon.Job]:
    """Every job in ``store``, page after page."""
    jobs: list[andon.Job] = []
    cursor = None
    while True:
        page = store.list_jobs(JobFilter(), 500, cursor)
        jobs += page.items
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor
