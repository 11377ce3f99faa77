"""A client generated from the live server's ``/openapi.json`` by a real generator
(openapi-python-client), used against a real server: the spec is what client generators
need, not only what documents the API.

It guards what generators trip on: operation ids that become the client's function names,
and bodies that may be left out (declared as ``anyOf [Model, null]``, the generated cancel
crashed when called without one). The generation runs once for the module.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import httpx
import pytest

import andon
from andon.api import create_app
from tests.acceptance.threaded_server import serve_in_thread
from tests.acceptance.tick_jobs import jobs
from tests.support import wait_until

PACKAGE: Final = "andon_generated_client"
GENERATE_S: Final = 240.0
BOUND_S: Final = 20.0  # generous: each wait below takes well under a second on a quiet machine
OPERATIONS: Final = {
    "getInfo", "listKinds", "submitJob", "listJobs", "cancelJobs", "getJob", "cancelJob", "failJob",
    "retryJob", "deleteJob", "getResults", "getEvents", "streamEvents", "listTokens", "logIn", "logOut",
    "resumeJob", "pauseKind", "unpauseKind", "downloadResults", "listChildren", "pruneHistory",
    "listSchedules", "addSchedule", "getSchedule", "removeSchedule", "pauseSchedule", "resumeSchedule",
    "triggerSchedule", "listTicks", "listWorkers",
}  # fmt: skip


class Generated:
    """The generated package, and the server it was generated from."""

    def __init__(self, base_url: str, root: Path) -> None:
        self.base_url = base_url
        self.root = root

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    def client(self) -> Any:  # Any: a class of the generated package, unknown to mypy
        return self.module("client").Client(base_url=self.base_url, raise_on_unexpected_status=True, timeout=30)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    folder = tmp_path_factory.mktemp("generated")
    with andon.SqliteStore(str(folder / "andon.db")) as store:
        worker = andon.Worker(jobs, store, concurrency=4, shutdown_grace_s=2.0, idle_poll_s=0.05)
        with serve_in_thread(create_app(store, jobs, worker=worker)) as base_url:
            spec = folder / "openapi.json"
            spec.write_text(json.dumps(httpx.get(f"{base_url}/openapi.json").json()))
            output = folder / PACKAGE
            generator = Path(sys.executable).with_name("openapi-python-client")
            command = [str(generator), "generate", "--path", str(spec), "--output-path", str(output), "--meta", "none"]
            run = subprocess.run(command, capture_output=True, text=True, timeout=GENERATE_S, check=False)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "warning" not in (run.stdout + run.stderr).lower(), run.stdout + run.stderr
            sys.path.insert(0, str(folder))
            try:
                yield Generated(base_url, output)
            finally:
                sys.path.remove(str(folder))
                for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
                    del sys.modules[name]


def test_every_operation_has_a_clean_name(generated: Generated) -> None:
    spec = json.loads((generated.root.parent / "openapi.json").read_text())
    ids = [operation["operationId"] for path in spec["paths"].values() for operation in path.values()]
    assert sorted(ids) == sorted(OPERATIONS)
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", operation_id), operation_id
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", operation_id).lower()
        tags = [folder for folder in (generated.root / "api").iterdir() if (folder / f"{snake}.py").exists()]
        assert len(tags) == 1, f"{operation_id}: no api/<tag>/{snake}.py in the generated client"


def test_a_generated_client_submits_cancels_reads_and_gets_typed_errors(generated: Generated) -> None:
    models = generated.module("models")
    submit_job = generated.module("api.jobs.submit_job")
    get_job = generated.module("api.jobs.get_job")
    get_results = generated.module("api.jobs.get_results")
    cancel_job = generated.module("api.stopping.cancel_job")
    cancel_jobs = generated.module("api.stopping.cancel_jobs")
    fail_job = generated.module("api.stopping.fail_job")
    with generated.client() as client:

        def submit() -> Any:  # Any: the generated JobOut
            job = submit_job.sync(client=client, body=models.SubmitBody(kind="tick"))
            assert isinstance(job, models.JobOut), job
            return job

        def emitting(job_id: str, count: int) -> bool:
            return bool(get_job.sync(job_id, client=client).items_count >= count)

        # A bare cancel (no body) of a running job, waiting for it to stop.
        bare = submit()
        wait_until(lambda: emitting(bare.id, 3), BOUND_S, "the job to run and emit", interval=0.02)
        stopped = cancel_job.sync(bare.id, client=client, wait=True)
        assert isinstance(stopped, models.JobOut), stopped
        assert stopped.status == models.JobStatus.CANCELLED
        results = get_results.sync(bare.id, client=client)
        assert isinstance(results, models.ResultsOut), results
        assert results.cancelled is True
        assert [item.data for item in results.items[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]

        # A cancel with a message, then read back with get.
        told = submit()
        answered = cancel_job.sync(told.id, client=client, body=models.CancelBody(message="not today"))
        assert isinstance(answered, models.JobOut), answered
        final = wait_until(
            lambda: _terminal(get_job.sync(told.id, client=client)), BOUND_S, "the cancel to complete", interval=0.02
        )
        assert final.status == models.JobStatus.CANCELLED
        assert final.cancel.message == "not today"

        # Bulk cancel without a body (every active job), and by ids.
        first, second, third = submit(), submit(), submit()
        by_ids = cancel_jobs.sync(client=client, body=models.BulkCancelBody(ids=[first.id]))
        assert isinstance(by_ids, models.BulkCancelOut), by_ids
        assert by_ids.ids == [first.id]
        rest = cancel_jobs.sync(client=client)
        assert isinstance(rest, models.BulkCancelOut), rest
        assert {second.id, third.id} <= set(rest.ids)

        # A bare force-fail of a job that already stopped is a typed 409.
        refused = fail_job.sync_detailed(bare.id, client=client)
        assert refused.status_code == 409
        assert isinstance(refused.parsed, models.ErrorBody), refused.parsed

        # An unknown id is a typed 404.
        missing = get_job.sync_detailed("no-such-job", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.ErrorBody), missing.parsed
        assert missing.parsed.error.code == "job_not_found"

        # A job's children and counts, typed (a tick submits none).
        list_children = generated.module("api.jobs.list_children")
        list_jobs = generated.module("api.jobs.list_jobs")
        page = list_children.sync(bare.id, client=client)
        assert isinstance(page, models.JobPage), page
        assert (page.items, page.next_cursor) == ([], None)
        read = get_job.sync(bare.id, client=client)
        assert (read.parent_id, read.children.total, read.descendants.active) == (None, 0, 0)
        by_root = list_jobs.sync(client=client, root=bare.id)
        assert isinstance(by_root, models.JobPage), by_root
        assert by_root.items == []
        orphan = list_children.sync_detailed("no-such-job", client=client)
        assert orphan.status_code == 404
        assert isinstance(orphan.parsed, models.ErrorBody), orphan.parsed


def _terminal(job: Any) -> Any:  # Any: the generated JobOut
    return job if job.is_terminal else None
