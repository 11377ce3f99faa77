"""Andon inside the user's own FastAPI app: ``Service.app`` mounted under a prefix, its
``lifespan`` entered from the parent app's lifespan, served for real by uvicorn.

The parent app keeps its own routes and lifespan; jobs submitted through the embedded API
run on the embedded worker, and everything the standalone server guards (Host, same
origin, tokens, security headers) is guarded the same under the prefix.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import andon
from andon.api import Service
from tests.acceptance.threaded_server import serve_in_thread
from tests.acceptance.tick_jobs import jobs
from tests.support import wait_until

PREFIX = "/andon"
API = f"{PREFIX}/api/v1"
ROOT = "embedded-admin-token"
BOUND_S = 20.0  # generous: each wait below takes well under a second on a quiet machine


def parent_app(service: Service, lifecycle: list[str], *, compose: bool = True) -> FastAPI:
    """The user's app: a route and a lifespan of its own, Andon mounted at ``PREFIX``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifecycle.append("parent started")
        if compose:
            async with service.lifespan(app):
                yield
        else:
            yield
        lifecycle.append("parent stopped")

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "from the parent"}

    app.mount(PREFIX, service.app)
    return app


@pytest.fixture
def worker(store: andon.SqliteStore) -> andon.Worker:
    return andon.Worker(jobs, store, concurrency=2, shutdown_grace_s=2.0, idle_poll_s=0.05)


def test_a_parent_app_runs_cancels_and_stops_jobs_through_the_embedded_api(
    store: andon.SqliteStore, worker: andon.Worker
) -> None:
    threads_before = set(threading.enumerate())
    lifecycle: list[str] = []
    service = Service(store, jobs, worker=worker)
    with serve_in_thread(parent_app(service, lifecycle)) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/hello").json() == {"hello": "from the parent"}
        info = http.get(f"{API}/info").json()
        assert info["worker"]["id"] == worker.id  # listed only while it runs

        created = http.post(f"{API}/jobs", json={"kind": "tick"})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        wait_until(
            lambda: http.get(f"{API}/jobs/{job_id}").json()["items_count"] >= 3,
            BOUND_S,
            "the job to run and emit",
            interval=0.02,
        )

        cancelled = http.post(f"{API}/jobs/{job_id}/cancel", params={"wait": "true"}, json={"message": "enough"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        results = http.get(f"{API}/jobs/{job_id}/results").json()
        assert results["cancelled"] is True
        assert len(results["items"]) >= 3
        assert [item["data"] for item in results["items"][:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert http.get("/hello").status_code == 200
    assert lifecycle == ["parent started", "parent stopped"]
    assert worker.state is andon.WorkerState.STOPPED
    wait_until(
        lambda: set(threading.enumerate()) <= threads_before, BOUND_S, "no thread to be left behind", interval=0.02
    )


def test_the_dashboard_and_docs_work_under_the_prefix(store: andon.SqliteStore, worker: andon.Worker) -> None:
    service = Service(store, jobs, worker=worker)
    with serve_in_thread(parent_app(service, [])) as base, httpx.Client(base_url=base, timeout=30) as http:
        redirect = http.get(PREFIX)
        assert redirect.status_code in (307, 308)
        assert redirect.headers["location"].endswith(f"{PREFIX}/")
        page = http.get(f"{PREFIX}/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        # The page's links are relative, so under /andon/ they reach /andon/static/...
        assert 'src="static/app.js"' in page.text
        assert http.get(f"{PREFIX}/static/app.js").status_code == 200
        assert http.get(f"{PREFIX}/docs").status_code == 200
        spec = http.get(f"{PREFIX}/openapi.json").json()
        assert "/api/v1/jobs" in spec["paths"]
        # The parent's own routes are the parent's: no Andon headers on them.
        assert "content-security-policy" not in http.get("/hello").headers


def test_the_guard_applies_under_the_prefix(store: andon.SqliteStore, worker: andon.Worker) -> None:
    service = Service(store, jobs, worker=worker)
    with TestClient(parent_app(service, []), base_url="http://127.0.0.1:8000") as http:
        evil_host = http.get(f"{API}/info", headers={"host": "rebind.example"})
        assert evil_host.status_code == 400
        assert evil_host.json()["error"]["code"] == "bad_host"
        forged = http.post(f"{API}/jobs", json={"kind": "tick"}, headers={"origin": "http://evil.example"})
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "cross_origin"
        assert http.get(f"{API}/jobs").status_code == 200


def test_tokens_are_required_under_the_prefix_and_the_session_stays_in_it(
    store: andon.SqliteStore, worker: andon.Worker
) -> None:
    service = Service(store, jobs, worker=worker, token=ROOT)
    with TestClient(parent_app(service, []), base_url="http://andon.example") as http:
        for method, path in (("GET", f"{API}/jobs"), ("POST", f"{API}/jobs/cancel"), ("GET", f"{PREFIX}/api/x")):
            refused = http.request(method, path)
            assert refused.status_code == 401, (method, path, refused.text)
            assert refused.json()["error"]["code"] == "unauthorized"
        assert http.get("/hello").status_code == 200
        bearer = {"authorization": f"Bearer {ROOT}"}
        assert http.get(f"{API}/jobs", headers=bearer).status_code == 200
        logged_in = http.post(f"{PREFIX}/api/session", headers=bearer)
        assert logged_in.status_code == 204
        assert "Path=/andon/" in logged_in.headers["set-cookie"]
        assert http.get(f"{API}/jobs").status_code == 200  # with the session cookie


def test_a_mounted_service_whose_lifespan_never_ran_refuses_and_says_why(
    store: andon.SqliteStore, worker: andon.Worker, caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(store, jobs, worker=worker)
    with (
        caplog.at_level(logging.ERROR, logger="andon.api"),
        TestClient(parent_app(service, [], compose=False), base_url="http://127.0.0.1:8000") as http,
    ):
        for path in (f"{API}/info", f"{API}/jobs"):
            refused = http.get(path)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "not_started"
            assert "lifespan" in refused.json()["error"]["message"]
        assert http.post(f"{API}/jobs", json={"kind": "tick"}).status_code == 503
        assert http.get("/hello").status_code == 200
    assert worker.state is andon.WorkerState.NEW
    assert andon.Client(store, jobs).list_jobs().items == []
    assert [r.message for r in caplog.records].count(refused.json()["error"]["message"]) == 1


def test_without_a_worker_an_unstarted_service_serves_but_logs(
    store: andon.SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(store, jobs)
    with (
        caplog.at_level(logging.ERROR, logger="andon.api"),
        TestClient(parent_app(service, [], compose=False), base_url="http://127.0.0.1:8000") as http,
    ):
        info = http.get(f"{API}/info")
        assert info.status_code == 200
        assert info.json()["worker"] is None
    assert any("lifespan has not run" in r.message for r in caplog.records)


def test_info_lists_a_worker_only_while_it_runs(store: andon.SqliteStore, worker: andon.Worker) -> None:
    service = Service(store, jobs, worker=worker)
    with TestClient(service.app, base_url="http://127.0.0.1:8000") as http:
        assert http.get("/api/v1/info").json()["worker"]["id"] == worker.id
        worker.stop()
        assert http.get("/api/v1/info").json()["worker"] is None


def test_a_service_serves_one_lifespan(store: andon.SqliteStore) -> None:
    service = Service(store, jobs)
    with TestClient(service.app):
        pass
    with pytest.raises(andon.LifecycleError, match="create a new app"), TestClient(service.app):
        pass


def test_a_parent_without_a_lifespan_of_its_own_can_take_the_services(
    store: andon.SqliteStore, worker: andon.Worker
) -> None:
    service = Service(store, jobs, worker=worker)
    parent = FastAPI(lifespan=service.lifespan)
    parent.mount(PREFIX, service.app)
    with TestClient(parent, base_url="http://127.0.0.1:8000") as http:
        assert http.get(f"{API}/info").json()["worker"]["id"] == worker.id
    assert worker.state is andon.WorkerState.STOPPED


def test_the_parent_apps_own_routes_use_the_async_client(store: andon.SqliteStore, worker: andon.Worker) -> None:
    """The README's example: the parent's routes submit and cancel through ``AsyncClient``
    (on the loop, no thread held while a cancel is awaited), beside the mounted service."""
    service = Service(store, jobs, worker=worker)
    client = andon.AsyncClient(store, jobs)
    lifecycle: list[str] = []
    app = parent_app(service, lifecycle)

    @app.post("/tick")
    async def start_tick() -> dict[str, str]:
        job = await client.submit("tick")
        return {"job": job.id}

    @app.post("/tick/{job_id}/cancel")
    async def stop_tick(job_id: str) -> dict[str, str]:
        result = await client.cancel(job_id, wait=True, timeout=BOUND_S)
        return {"status": result.job.status.value}

    @app.post("/close-client")
    async def close_client() -> None:
        await client.close()  # on the loop it ran on (an app would do this in its lifespan)

    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        job_id = http.post("/tick").json()["job"]
        wait_until(lambda: store.get(job_id).items_count >= 2, BOUND_S, "the job to run", interval=0.02)
        assert http.post(f"/tick/{job_id}/cancel").json() == {"status": "cancelled"}
        assert http.get(f"{API}/jobs/{job_id}").json()["status"] == "cancelled"
        http.post("/close-client")
    stopped = store.get(job_id)
    assert stopped.cancel is not None
    assert stopped.cancel.stopped_at is not None
