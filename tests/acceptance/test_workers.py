"""The workers registry through every shell.

* In process (Starlette's TestClient): ``GET /api/v1/workers`` and the registry's summary in
  ``/api/v1/info``, guarded as the other reads (401 without a token; a ``user`` sees every
  worker but only its own jobs' ids).
* ``andon workers`` (Typer's CliRunner): the table and ``--json``.
* Real processes, on SQLite and PostgreSQL: an ``andon worker`` started on its own appears in
  the API and in the dashboard (Chromium) of an API-only ``andon serve``, and shows as stopped
  after SIGTERM, the dashboard's texts saying what the registry says.
* kill -9 of an ``andon worker`` on SQLite: the API server's lookout finds its process gone
  and its running jobs are recovered within a second or so (the figure is printed), not
  after the 30 s lease.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.testclient import TestClient
from typer.testing import Result

import andon
from andon.api import create_app
from andon.examples import app as example_app
from tests.acceptance.serving import Served, serve
from tests.postgres import fresh_schema
from tests.subprocesses import WorkerProcess
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

WAIT_S = 20.0
RECOVERY_BOUND_S = 10.0
"""Generous: the lookout looks every 0.5 s; the figure itself is printed."""
LONG = {"n": 100_000, "interval_s": 0.05}
"""Runs for well over a minute: only a stop ends it within the test."""
SCREENSHOTS = "ANDON_SCREENSHOTS"
"""A folder to keep the Workers panel's screenshots in (``workers.png``, ``workers-dead.png``);
without it they go to the test's temporary folder."""
Json = dict[str, Any]  # Any: decoded JSON bodies


# -- in process: the API ---------------------------------------------------------------------


@pytest.fixture
def api_with_worker(store: andon.SqliteStore) -> Iterator[tuple[TestClient, andon.Worker]]:
    worker = andon.Worker(example_app, store, concurrency=3, shutdown_grace_s=0.5)
    with TestClient(create_app(store, example_app, worker=worker), base_url="http://127.0.0.1:8000") as http:
        yield http, worker


def test_the_api_lists_the_registry_and_info_states_its_summary(
    api_with_worker: tuple[TestClient, andon.Worker],
) -> None:
    http, worker = api_with_worker
    job = http.post("/api/v1/jobs", json={"kind": "count", "params": LONG}).json()
    wait_until(lambda: http.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "running", WAIT_S, "the job to run")
    answer = http.get("/api/v1/workers")
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["items"]
    assert row["id"] == worker.id
    assert row["status"] == "alive"
    assert row["silent_s"] is None
    assert (row["pid"], row["slots"], row["running"], row["slots_in_use"]) == (os.getpid(), 3, 1, 1)
    assert row["job_ids"] == [job["id"]]
    assert row["kinds"] == worker.kind_names
    assert row["version"] == andon.__version__
    assert answer.json()["summary"] == {
        "alive": 1,
        "silent": 0,
        "slots": 3,
        "slots_in_use": 1,
        "alive_ids": [worker.id],
    }
    info = http.get("/api/v1/info").json()
    assert info["worker"]["id"] == worker.id
    assert info["workers"]["alive"] == 1
    assert http.post(f"/api/v1/jobs/{job['id']}/cancel?wait=true").status_code == 200


def test_the_workers_list_is_guarded_like_every_read(store: andon.SqliteStore) -> None:
    admin = andon.Client(store, example_app)
    alice = admin.create_token("alice", "user").token
    bob = admin.create_token("bob", "user").token
    worker = andon.Worker(example_app, store, concurrency=2, shutdown_grace_s=0.5)
    with TestClient(create_app(store, example_app, worker=worker), base_url="http://127.0.0.1:8000") as http:
        refused = http.get("/api/v1/workers")
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
        as_alice = {"authorization": f"Bearer {alice}"}
        mine = http.post("/api/v1/jobs", json={"kind": "count", "params": LONG}, headers=as_alice).json()
        theirs = http.post(
            "/api/v1/jobs", json={"kind": "count", "params": LONG}, headers={"authorization": f"Bearer {bob}"}
        ).json()
        wait_until(lambda: admin.get(theirs["id"]).status is andon.JobStatus.RUNNING, WAIT_S, "bob's job to run")
        wait_until(lambda: admin.get(mine["id"]).status is andon.JobStatus.RUNNING, WAIT_S, "alice's job to run")
        (row,) = http.get("/api/v1/workers", headers=as_alice).json()["items"]
        assert (row["running"], row["job_ids"]) == (2, [mine["id"]])
        for job in (mine, theirs):
            admin.cancel(job["id"], wait=True)


# -- andon workers -----------------------------------------------------------------------------


def test_andon_workers_shows_each_worker_and_what_it_is(
    run: Callable[..., Result], make_worker: Callable[..., andon.Worker], client: andon.Client
) -> None:
    empty = run("workers")
    assert empty.exit_code == 0, empty.output
    assert "no worker is alive" in empty.output
    alive = make_worker(concurrency=2)
    gone = make_worker(concurrency=1, kind_names=["sleeper"])
    gone.stop()
    job = client.submit("count", LONG)
    wait_until(lambda: client.get(job.id).status is andon.JobStatus.RUNNING, WAIT_S, "the job to run")
    table = run("workers")
    assert table.exit_code == 0, table.output
    line = next(line for line in table.output.splitlines() if alive.id in line)
    assert re.search(rf"{re.escape(alive.id)}\s+alive\s+\S+\s+{os.getpid()}\s+1 / 2\s+{job.id}", line), line
    assert re.search(rf"{re.escape(gone.id)}\s+stopped\s", table.output), table.output
    assert "1 alive, 1 of 2 slots in use" in table.output
    lines = run("workers", "--json")
    assert lines.exit_code == 0, lines.output
    rows = {row["id"]: row for row in map(json.loads, lines.output.splitlines())}
    assert rows[alive.id]["status"] == "alive"
    assert rows[alive.id]["job_ids"] == [job.id]
    assert rows[gone.id]["status"] == "stopped"
    assert rows[gone.id]["kinds"] == ["sleeper"]
    client.cancel(job.id, wait=True)


# -- real processes: andon serve --no-worker and andon worker -----------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'andon.db'}"
        return
    with fresh_schema(migrate=False) as url:  # skips loudly when unreachable; fails under CI=true
        yield url


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def workers_of(api: Served) -> Json:
    status, body = api.request("GET", "/api/v1/workers")
    assert status == 200, body
    answer: Json = body
    return answer


def row_of(api: Served, worker: WorkerProcess) -> Json | None:
    return next((row for row in workers_of(api)["items"] if row["pid"] == worker.pid), None)


def submit(api: Served) -> str:
    status, job = api.request("POST", "/api/v1/jobs", {"kind": "count", "params": LONG})
    assert status == 201, job
    job_id: str = job["id"]
    return job_id


def open_home(page: Page, api: Served) -> None:
    page.goto(api.base_url)
    expect(page.locator("#live")).to_have_text("live", timeout=10_000)


def test_a_separate_worker_shows_in_the_api_and_dashboard_of_an_api_only_server_then_stopped(
    db: str, tmp_path: Path, browser: Browser
) -> None:
    api = serve(tmp_path, "--no-worker", "--upgrade-db", "--no-demo-jobs", "--db", db)
    worker: WorkerProcess | None = None
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        worker = WorkerProcess(tmp_path, db, concurrency=2)
        worker.wait_started(WAIT_S)
        job_id = submit(api)
        api.wait_job(job_id, lambda job: job["status"] == "running", WAIT_S, "the job to run in the worker")
        row = row_of(api, worker)
        assert row is not None, workers_of(api)
        assert row["status"] == "alive"
        assert (row["slots"], row["running"], row["slots_in_use"], row["job_ids"]) == (2, 1, 1, [job_id])
        status, info = api.request("GET", "/api/v1/info")
        assert status == 200
        assert info["worker"] is None
        assert info["workers"]["alive"] == 1
        assert info["workers"]["alive_ids"] == [row["id"]]

        open_home(page, api)
        entry = page.locator(f'#workers-list li[data-worker="{row["id"]}"]')
        expect(entry.locator(".badge")).to_have_text("alive", timeout=10_000)
        expect(entry.locator(".worker-slots")).to_have_text("1 / 2 slots in use", timeout=10_000)
        expect(entry.locator(".worker-jobs a")).to_have_attribute("href", f"#/jobs/{job_id}")
        expect(entry.locator(".worker-where")).to_contain_text(f"pid {worker.pid}")
        note = page.locator("#no-worker-note")
        expect(note).to_be_visible()
        expect(note).to_have_text(
            f"This server runs no worker; 1 worker alive in the store claims its jobs: {row['id']} (2 slots).",
            timeout=10_000,
        )
        expect(page.locator("#server-info")).to_contain_text("no worker in this server · 1 worker alive")
        if db.startswith("sqlite"):
            page.locator(".workers-panel").screenshot(path=str(screenshots(tmp_path) / "workers.png"))

        assert worker.stop(signal.SIGTERM) == 0, worker.output()
        stopped = row_of(api, worker)
        assert stopped is not None
        assert stopped["status"] == "stopped"
        assert stopped["stopped_at"] is not None
        assert stopped["slots_in_use"] == 0
        expect(entry.locator(".badge")).to_have_text("stopped", timeout=10_000)
        expect(note).to_contain_text("This server runs no worker, and no worker is alive in the store", timeout=10_000)
        expect(page.locator("#server-info")).to_contain_text("no worker is alive")
        # The worker put its running job back in the queue as it stopped: it waits, truthfully.
        assert api.wait_job(job_id, lambda job: job["status"] == "queued", WAIT_S)["status"] == "queued"
        assert api.stop() == 0, api.output()
        assert "Traceback" not in api.output() + worker.output()
    finally:
        page.close()
        api.kill()
        if worker is not None:
            worker.kill()
    assert errors == [], errors


def test_kill_9_of_a_worker_on_sqlite_recovers_its_jobs_at_once(tmp_path: Path, browser: Browser) -> None:
    db = f"sqlite:///{tmp_path / 'andon.db'}"
    api = serve(tmp_path, "--no-worker", "--no-demo-jobs", "--db", db)
    worker: WorkerProcess | None = None
    try:
        worker = WorkerProcess(tmp_path, db, concurrency=2)
        worker.wait_started(WAIT_S)
        jobs = [submit(api) for _ in range(2)]
        for job_id in jobs:
            api.wait_job(job_id, lambda job: job["status"] == "running", WAIT_S, "the job to run in the worker")
        row = row_of(api, worker)
        assert row is not None
        with andon.connect(db) as client:
            killed_at = time.monotonic()
            os.kill(worker.pid, signal.SIGKILL)
            wait_until(
                lambda: all(client.get(job_id).status is not andon.JobStatus.RUNNING for job_id in jobs),
                RECOVERY_BOUND_S,
                "the killed worker's jobs to be recovered",
                interval=0.005,
            )
            took = time.monotonic() - killed_at
            print(f"\nkill -9 of an andon worker on SQLite: its 2 running jobs recovered {took * 1000:.0f} ms later")
            for job_id in jobs:
                job = client.get(job_id)
                assert job.status is andon.JobStatus.FAILED  # count has no retry policy
                assert job.error is not None
                assert job.error.type == "WorkerLost"
                assert f"its process (pid {worker.pid} on " in job.error.message
                last = client.events(job_id)[-1]
                assert (last.type, last.reason) == ("worker lost", "worker_lost")
        dead = row_of(api, worker)
        assert dead is not None
        assert dead["status"] == "dead"
        assert f"pid {worker.pid}" in dead["end_message"]
        assert (dead["running"], dead["slots_in_use"]) == (0, 0)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            open_home(page, api)
            entry = page.locator(f'#workers-list li[data-worker="{row["id"]}"]')
            expect(entry.locator(".badge")).to_have_text("dead", timeout=10_000)
            expect(entry.locator(".worker-end")).to_have_text(dead["end_message"])
            page.locator(".workers-panel").screenshot(path=str(screenshots(tmp_path) / "workers-dead.png"))
        finally:
            page.close()
        assert api.stop() == 0, api.output()
    finally:
        api.kill()
        if worker is not None:
            worker.kill()
