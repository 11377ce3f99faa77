"""``GET /metrics`` over real HTTP, parsed with ``prometheus_client``'s own parser, after jobs
ended every way a worker ends them: the figures equal what the store's history says.

A server with a token and its worker runs on a loopback port (uvicorn in a thread); jobs are
submitted, cancelled and paused through the REST API. The handlers stop cooperatively, by an
injected ``Cancelled`` (a thread that never checks) and by SIGKILL (a process that ignores
SIGTERM); queued jobs of a paused kind are withdrawn one by one and by a filter.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import andon
from andon._storage._postgres import PostgresStore
from andon.api import Service
from tests.acceptance.threaded_server import serve_in_thread
from tests.postgres import fresh_schema
from tests.support import every_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "metrics-test-token-0123456789"

app = andon.App(default_grace=0.2)


@app.job("polite")
def polite(ctx: andon.Context) -> None:
    """Stops at its next cancel point."""
    while True:
        ctx.sleep(0.01)


@app.job("deaf")
def deaf(ctx: andon.Context) -> None:
    """Never checks: the worker injects ``Cancelled`` into its thread."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        sum(range(1000))


@app.job("stubborn", isolation="process", grace=0.2)  # a SIGTERM at the request could beat its SIG_IGN
def stubborn(ctx: andon.Context) -> None:
    """Ignores SIGTERM and never checks: only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.emit({"deaf to": "SIGTERM"})  # the test cancels only after this: a SIGTERM before it would end it
    while True:
        time.sleep(0.01)


@app.job("quick")
def quick(ctx: andon.Context) -> int:
    return 1


@app.job("later")
def later(ctx: andon.Context) -> None:
    """Only ever withdrawn here: its kind is paused before any is submitted."""


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[andon.Store]:
    if request.param == "sqlite":
        with andon.SqliteStore(str(tmp_path / "m.db")) as sqlite:
            yield sqlite
    else:
        with fresh_schema() as url, PostgresStore(url) as postgres:
            yield postgres


@pytest.fixture
def http(store: andon.Store) -> Iterator[httpx.Client]:
    worker = andon.Worker(app, store, concurrency=2, shutdown_grace_s=1.0)
    service = Service(store, app, worker=worker, token=TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with serve_in_thread(service.app) as base, httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        yield client


def submit(http: httpx.Client, kind: str) -> str:
    answer = http.post("/api/v1/jobs", json={"kind": kind, "params": {}})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def wait_status(http: httpx.Client, job_id: str, status: str) -> None:
    deadline = time.monotonic() + 60
    while (now := http.get(f"/api/v1/jobs/{job_id}").json()["status"]) != status:
        assert time.monotonic() < deadline, f"job {job_id} stayed {now}, never {status}"
        time.sleep(0.02)


def run_and_cancel(http: httpx.Client, kind: str) -> dict[str, Any]:
    job_id = submit(http, kind)
    wait_status(http, job_id, "running")
    if kind == "stubborn":  # its SIGTERM must find the handler ignoring it, however slow the start
        deadline = time.monotonic() + 60
        while http.get(f"/api/v1/jobs/{job_id}").json()["items_count"] < 1:
            assert time.monotonic() < deadline, f"job {job_id} never said it ignores SIGTERM"
            time.sleep(0.02)
    answer = http.post(f"/api/v1/jobs/{job_id}/cancel?wait=true&timeout=30")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    assert job["status"] == "cancelled", job
    return job


def scrape(http: httpx.Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of ``/metrics``, by sample name."""
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def by(samples: list[tuple[dict[str, str], float]], *labels: str) -> dict[tuple[str, ...], float]:
    """Sample values added up by the given labels."""
    added: dict[tuple[str, ...], float] = {}
    for sample_labels, value in samples:
        key = tuple(sample_labels[label] for label in labels)
        added[key] = added.get(key, 0.0) + value
    return added


def test_metrics_agree_with_the_stores_history(store: andon.Store, http: httpx.Client) -> None:
    methods = {
        "polite": run_and_cancel(http, "polite")["cancel"]["stop_method"],
        "deaf": run_and_cancel(http, "deaf")["cancel"]["stop_method"],
        "stubborn": run_and_cancel(http, "stubborn")["cancel"]["stop_method"],
    }
    assert methods == {"polite": "cooperative", "deaf": "injected", "stubborn": "killed"}
    run_and_cancel(http, "deaf")
    done = submit(http, "quick")
    wait_status(http, done, "succeeded")
    assert http.post("/api/v1/kinds/later/pause", json={}).status_code == 200
    waiting = [submit(http, "later") for _ in range(4)]
    assert http.post(f"/api/v1/jobs/{waiting[0]}/cancel").json()["status"] == "cancelled"
    bulk = http.post("/api/v1/jobs/cancel", json={"kind": "later", "status": "queued"})
    assert bulk.json()["cancelled"] == 3, bulk.text
    left = submit(http, "later")  # stays queued

    samples = scrape(http)
    jobs = every_job(store)
    events = {job.id: store.events(job.id) for job in jobs}
    kind_of = {job.id: job.kind for job in jobs}
    method_of = {job.id: job.cancel.stop_method.value for job in jobs if job.cancel and job.cancel.stop_method}

    # The histogram counts, per kind and stop method, are the "cancelled" events in the store.
    cancelled = Counter(
        (kind_of[job_id], method_of[job_id])
        for job_id, history in events.items()
        for e in history
        if e.type == "cancelled"
    )
    assert by(samples["andon_stop_seconds_count"], "kind", "method") == dict(cancelled)
    assert dict(cancelled) == {("polite", "cooperative"): 1, ("deaf", "injected"): 2, ("stubborn", "killed"): 1}
    infinite = [s for s in samples["andon_stop_seconds_bucket"] if s[0]["le"] == "+Inf"]
    assert by(infinite, "kind", "method") == dict(cancelled)
    assert all(value >= 0 for _, value in samples["andon_stop_seconds_sum"])
    # The rungs: every stop, the withdrawn ones too, as the history records them.
    withdrawn = Counter(kind_of[job_id] for job_id, history in events.items() for e in history if e.type == "withdrawn")
    assert withdrawn == {"later": 4}
    rungs = {key: value for key, value in by(samples["andon_stops_total"], "kind", "method").items() if value}
    assert rungs == {**dict(cancelled), ("later", "withdrawn"): 4.0}
    # What ended, by kind and state, is what the store holds.
    ended = Counter((job.kind, job.status.value) for job in jobs if job.is_terminal)
    counted = {key: value for key, value in by(samples["andon_jobs_ended_total"], "kind", "state").items() if value}
    assert counted == dict(ended)
    assert ended[("later", "cancelled")] == 4
    # Active jobs: the one left queued (its kind paused), nothing running or stopping.
    active = {key: value for key, value in by(samples["andon_jobs"], "kind", "state").items() if value}
    assert active == {("later", "queued"): 1.0}
    assert by(samples["andon_queue_depth"], "kind")[("later",)] == 1.0
    assert by(samples["andon_cancels_pending"], "kind") == dict.fromkeys(
        [("deaf",), ("later",), ("polite",), ("quick",), ("stubborn",)], 0.0
    )
    assert store.get(left).status is andon.JobStatus.QUEUED
    # Workers: the registry's rows, as the store tells them (this server's own worker is alive).
    workers = store.workers()
    alive = [w for w in workers if w.is_alive]
    assert len(alive) >= 1
    statuses = Counter(w.status.value for w in workers)
    assert by(samples["andon_workers"], "status") == {(s.value,): float(statuses[s.value]) for s in andon.WorkerStatus}
    slots = by(samples["andon_worker_slots"], "state")
    assert slots == {("total",): float(sum(w.slots for w in alive)), ("in_use",): 0.0}  # nothing runs now


def test_metrics_need_the_token_like_the_rest_of_the_api(http: httpx.Client) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-token"}):
        answer = httpx.get(http.base_url.join("/metrics"), headers=headers, timeout=30)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthorized"
    assert http.get("/metrics").status_code == 200
