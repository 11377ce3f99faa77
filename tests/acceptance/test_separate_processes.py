"""The API and the worker as separate processes, the way production runs: ``andon serve
--no-worker`` answers HTTP, ``andon worker`` (started on its own) runs the jobs, and the two
share only the store (a SQLite file, or a PostgreSQL schema).

Cancel, Cancel & delete, Force fail, Retry, Remove and Cancel all, sent to the API, act on
work running in the worker's process; every job records the worker that ran it, whose id
carries the worker's pid. One dashboard flow in Chromium (SQLite only): submit from the
form, watch the progress move, press Cancel, see ``cancelled`` with the items kept.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.acceptance.serving import Served, serve
from tests.postgres import fresh_schema
from tests.subprocesses import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

WAIT_S = 15.0
LONG = {"n": 100_000, "interval_s": 0.05}
"""Runs for well over a minute: only a cancel ends it within the test."""


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store's URL: a SQLite file, or an empty PostgreSQL schema (``--upgrade-db`` creates it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'andon.db'}"
        return
    with fresh_schema(migrate=False) as url:  # skips loudly when unreachable; fails under CI=true
        yield url


@pytest.fixture
def processes(db: str, tmp_path: Path) -> Iterator[tuple[Served, WorkerProcess]]:
    """``andon serve --no-worker`` and ``andon worker``: two processes, one store."""
    api = serve(tmp_path, "--no-worker", "--upgrade-db", "--no-demo-jobs", "--db", db)
    worker: WorkerProcess | None = None
    try:
        worker = WorkerProcess(tmp_path, db)
        worker.wait_started(WAIT_S)
        assert api.process.pid != worker.pid
        yield api, worker
        assert worker.stop() == 0, worker.output()
        assert api.stop() == 0, api.output()
        assert "Traceback" not in api.output(), api.output()
        assert "Traceback" not in worker.output(), worker.output()
    finally:
        api.kill()
        if worker is not None:
            worker.kill()


def call(api: Served, method: str, path: str, body: object = None, expected: int = 200) -> Any:  # Any: JSON
    status, answer = api.request(method, path, body)
    assert status == expected, f"{method} {path}: {status} {answer}"
    return answer


def job(api: Served, job_id: str) -> Any:  # Any: the decoded JobOut
    return call(api, "GET", f"/api/v1/jobs/{job_id}")


def submit(api: Served, params: dict[str, float]) -> str:
    submitted = call(api, "POST", "/api/v1/jobs", {"kind": "count", "params": params}, expected=201)
    assert submitted["status"] == "queued", submitted
    job_id: str = submitted["id"]
    return job_id


def wait_status(api: Served, job_id: str, status: str) -> Any:  # Any: the decoded JobOut
    return api.wait_job(job_id, lambda seen: seen["status"] == status, WAIT_S, f"{job_id} to be {status}")


def wait_running_with_items(api: Served, job_id: str, worker: WorkerProcess) -> Any:  # Any: the decoded JobOut
    """Running in the worker's process, with at least one item emitted there."""
    seen = api.wait_job(
        job_id, lambda job: job["status"] == "running" and job["items_count"] > 0, WAIT_S, f"{job_id} to run and emit"
    )
    ran_by(seen, worker)
    return seen


def ran_by(seen: dict[str, Any], worker: WorkerProcess) -> None:
    """A running job names the worker holding it, ``host:pid:suffix``: the separate worker process's pid."""
    assert seen["worker_id"] is not None, seen
    assert seen["worker_id"].split(":")[1] == str(worker.pid), (seen["worker_id"], worker.pid)


def started_by(api: Served, job_id: str, worker: WorkerProcess) -> None:
    """A finished job still names the worker of its last attempt in ``worker_id`` (it used to be
    cleared when the job settled), and its ``started`` event names that worker too,
    ``worker:host:pid:suffix``."""
    finished = job(api, job_id)
    assert finished["is_terminal"], finished
    ran_by(finished, worker)
    events = call(api, "GET", f"/api/v1/jobs/{job_id}/events")["items"]
    started = [event for event in events if event["type"] == "started"]
    assert len(started) == 1, events
    actor = started[0]["actor"]
    assert actor.startswith("worker:"), started
    assert actor.split(":")[2] == str(worker.pid), (actor, worker.pid)


def test_every_stop_action_of_the_api_acts_on_a_separate_worker_process(
    processes: tuple[Served, WorkerProcess],
) -> None:
    api, worker = processes
    info = call(api, "GET", "/api/v1/info")
    assert info["worker"] is None, info  # API only: nothing runs in the API process

    cancelled_id = submit(api, {"n": 40, "interval_s": 0.05})  # short: its retry runs to the end
    deleted_id = submit(api, LONG)
    failed_id = submit(api, LONG)
    for job_id in (cancelled_id, deleted_id, failed_id):
        wait_running_with_items(api, job_id, worker)

    # Cancel: the work stops cooperatively in the worker; what it emitted is kept.
    answer = call(api, "POST", f"/api/v1/jobs/{cancelled_id}/cancel")
    assert answer["status"] in ("cancelling", "cancelled"), answer
    cancelled = wait_status(api, cancelled_id, "cancelled")
    assert cancelled["cancel"]["reason"] == "user", cancelled
    assert cancelled["cancel"]["stop_method"] == "cooperative", cancelled
    assert cancelled["cancel"]["acknowledged_at"] is not None, cancelled
    assert 0 < cancelled["items_count"] < 40, cancelled
    started_by(api, cancelled_id, worker)
    results = call(api, "GET", f"/api/v1/jobs/{cancelled_id}/results")
    assert results["cancelled"] is True, results
    assert results["complete"] is True, results
    assert results["count"] == cancelled["items_count"] > 0, results
    assert [item["data"]["i"] for item in results["items"]] == list(range(results["count"])), results

    # Cancel & delete: answers once the worker's work stopped, and the job is gone.
    call(api, "DELETE", f"/api/v1/jobs/{deleted_id}", expected=204)
    call(api, "GET", f"/api/v1/jobs/{deleted_id}", expected=404)

    # Force fail: the worker stops the work and the job is failed, a ForcedFailure.
    call(api, "POST", f"/api/v1/jobs/{failed_id}/fail", {"message": "stop it", "retry": False})
    failed = wait_status(api, failed_id, "failed")
    assert failed["error"]["type"] == "ForcedFailure", failed
    assert failed["cancel"]["reason"] == "forced", failed
    assert failed["cancel"]["stopped_at"] is not None, failed
    started_by(api, failed_id, worker)

    # Retry the cancelled one: a new job, which the worker runs to the end.
    retried = call(api, "POST", f"/api/v1/jobs/{cancelled_id}/retry", expected=201)
    assert retried["id"] != cancelled_id, retried
    assert retried["retry_of"] == cancelled_id, retried
    assert retried["params"] == {"n": 40, "interval_s": 0.05}, retried
    wait_status(api, retried["id"], "running")
    succeeded = wait_status(api, retried["id"], "succeeded")
    assert succeeded["result"] == {"counted": 40}, succeeded
    assert succeeded["items_count"] == 40, succeeded
    started_by(api, retried["id"], worker)

    # Remove: a finished job is deleted.
    call(api, "DELETE", f"/api/v1/jobs/{retried['id']}", expected=204)
    call(api, "GET", f"/api/v1/jobs/{retried['id']}", expected=404)

    # Cancel all the running jobs: every one of them stops in the worker.
    running = [submit(api, LONG) for _ in range(3)]
    for job_id in running:
        wait_running_with_items(api, job_id, worker)
    bulk = call(api, "POST", "/api/v1/jobs/cancel", {"status": "running", "message": "cancel all"})
    assert bulk["cancelled"] == 3, bulk
    assert sorted(bulk["ids"]) == sorted(running), bulk
    for job_id in running:
        stopped = wait_status(api, job_id, "cancelled")
        assert stopped["cancel"]["stop_method"] == "cooperative", stopped
        assert stopped["items_count"] > 0, stopped
    page = call(api, "GET", "/api/v1/jobs?status=queued&status=running&status=cancelling")
    assert page["items"] == [], page
    # The jobs stopped before were left as they were.
    assert job(api, cancelled_id)["status"] == "cancelled"
    assert job(api, failed_id)["status"] == "failed"


@pytest.fixture
def sqlite_processes(tmp_path: Path) -> Iterator[tuple[Served, WorkerProcess]]:
    db_url = f"sqlite:///{tmp_path / 'andon.db'}"
    api = serve(tmp_path, "--no-worker", "--no-demo-jobs", "--db", db_url)
    worker: WorkerProcess | None = None
    try:
        worker = WorkerProcess(tmp_path, db_url)
        worker.wait_started(WAIT_S)
        yield api, worker
        assert worker.stop() == 0, worker.output()
        assert api.stop() == 0, api.output()
    finally:
        api.kill()
        if worker is not None:
            worker.kill()


def test_the_dashboard_of_an_api_only_server_cancels_a_job_in_the_worker_process(
    sqlite_processes: tuple[Served, WorkerProcess], browser: Browser
) -> None:
    api, worker = sqlite_processes
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(api.base_url)
        expect(page.locator("#live")).to_have_text("live", timeout=10_000)

        form = page.get_by_role("region", name="Submit a job")
        form.get_by_label("Kind").select_option("count")
        form.get_by_label("n", exact=True).fill("400")
        form.get_by_label("interval_s").fill("0.05")
        with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/jobs"), timeout=10_000
        ) as posted:
            form.get_by_role("button", name="Submit job").click()
        job_id = posted.value.json()["id"]

        card = page.locator(f'#active-list li[data-job-id="{job_id}"]')
        expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
        bar = card.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d*$"), timeout=10_000)
        before = int(bar.get_attribute("aria-valuenow") or "0")
        expect(bar).not_to_have_attribute("aria-valuenow", str(before), timeout=10_000)
        assert int(bar.get_attribute("aria-valuenow") or "0") > before  # progress from the worker, live

        started = time.monotonic()
        card.get_by_role("button", name="Cancel", exact=True).click()
        expect(card.locator(".badge")).to_have_text("cancelled", timeout=10_000)
        cancelled = wait_status(api, job_id, "cancelled")
        assert time.monotonic() - started < WAIT_S
        assert cancelled["cancel"]["stop_method"] == "cooperative", cancelled
        assert 0 < cancelled["items_count"] < 400, cancelled
        started_by(api, job_id, worker)
        expect(card.locator(".progress-message")).to_have_text(
            re.compile(rf"^cancelled: {cancelled['items_count']} of 400 items kept"), timeout=10_000
        )
        expect(card.get_by_role("button", name="Cancel", exact=True)).to_have_count(0, timeout=10_000)
    finally:
        page.close()
    assert errors == [], errors
