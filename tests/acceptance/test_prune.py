"""Pruning from the outside: ``POST /api/v1/prune`` (admins only, bad input a 4xx) and
``andon prune`` (durations, errors), and what every reader says of a pruned job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

import andon
from andon._ids import new_job_id
from andon._jobs import Outcome, OutcomeKind
from andon._output import ProgressUpdate
from andon._storage import NewJob
from andon.api import create_app
from andon.cli import cli
from andon.cli._input import parse_duration
from andon.examples import app as example_app
from tests.support import wait_until

ROOT = "andon_" + "r" * 43
BASE = "http://127.0.0.1:8000"


def finished_job(store: andon.SqliteStore, kind: str = "count") -> andon.Job:
    """A job of ``kind`` cancelled while it ran, with two items and a cancel record."""
    [job] = store.submit([NewJob(id=new_job_id(), kind=kind, params={"n": 3})], "tester")
    [running] = store.claim_many("w1", [kind], 30.0, 1)
    store.write_progress([ProgressUpdate(running.id, running.attempt, items=[(0, 0.0, "{}"), (1, 0.0, "{}")])])
    store.request_cancel(job.id, andon.CancelReason.USER, by="alice", message="no longer needed")
    done = store.settle(
        "w1", running.attempt, job.id, Outcome(OutcomeKind.STOPPED, stop_method=andon.StopMethod.INJECTED), None
    )
    time.sleep(0.01)  # finished strictly before "now" of a prune with --older-than 0
    return done


@pytest.fixture
def http(store: andon.SqliteStore) -> Iterator[tuple[TestClient, dict[str, str]]]:
    admin = andon.Client(store)
    tokens = {"ops": admin.create_token("ops", "admin").token, "alice": admin.create_token("alice", "user").token}
    api = create_app(store, example_app, token=ROOT, auth_cache_s=0.0)
    with TestClient(api, base_url=BASE) as client:
        yield client, tokens


def post(http: tuple[TestClient, dict[str, str]], who: str, body: Any) -> Any:  # Any: JSON, httpx.Response
    client, tokens = http
    return client.post("/api/v1/prune", json=body, headers={"authorization": f"Bearer {tokens[who]}"})


def test_api_prune_is_for_admins_and_leaves_a_tombstone(
    store: andon.SqliteStore, http: tuple[TestClient, dict[str, str]]
) -> None:
    job = finished_job(store)
    refused = post(http, "alice", {"older_than_s": 0})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "not_allowed"
    assert store.get(job.id).pruned_at is None

    dry = post(http, "ops", {"older_than_s": 0, "dry_run": True}).json()
    assert (dry["jobs"], dry["items"], dry["dry_run"]) == (1, 2, True)
    done = post(http, "ops", {"older_than_s": 0, "statuses": ["cancelled"]})
    assert done.status_code == 200, done.text
    assert (done.json()["jobs"], done.json()["items"], done.json()["purged"]) == (1, 2, False)

    client, tokens = http
    headers = {"authorization": f"Bearer {tokens['ops']}"}
    shown = client.get(f"/api/v1/jobs/{job.id}", headers=headers).json()
    assert shown["pruned_at"] is not None
    assert shown["params"] == {}
    assert (shown["cancel"]["by"], shown["cancel"]["reason"]) == ("alice", "user")
    assert shown["cancel"]["stop_method"] == "injected"
    assert "retry" not in shown["actions"]
    assert client.get(f"/api/v1/jobs/{job.id}/events", headers=headers).json()["items"] == []
    retried = client.post(f"/api/v1/jobs/{job.id}/retry", headers=headers)
    assert retried.status_code == 409, retried.text
    assert retried.json()["error"]["code"] == "job_pruned"
    exported = client.get(f"/api/v1/jobs/{job.id}/results.jsonl", headers=headers)
    assert exported.status_code == 409, exported.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"older_than_s": -1},
        {"older_than_s": "30d"},
        {"older_than_s": 1, "statuses": ["running"]},
        {"older_than_s": 1, "statuses": []},
        {"older_than_s": 1, "batch": 0},
        {"older_than_s": 1, "batch": 10_001},
        {"older_than_s": 1, "purge": "yes please"},
        {"older_than_s": 1, "surprise": True},
        [1, 2],
    ],
)
def test_api_prune_refuses_bad_input_with_a_4xx(http: tuple[TestClient, dict[str, str]], body: Any) -> None:
    response = post(http, "ops", body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"


def run(db_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--db", f"sqlite:///{db_path}"], env={})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86_400.0), ("12h", 43_200.0), ("90m", 5400.0), ("45s", 45.0), ("10", 10.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--older-than") == seconds


def test_cli_prune_show_and_refusals(db_path: Path, store: andon.SqliteStore) -> None:
    job = finished_job(store)
    code, out, err = run(db_path, "prune", "--older-than", "0s", "--dry-run")
    assert (code, err) == (0, "")
    assert "would prune 1 job(s)" in out
    code, out, err = run(db_path, "prune", "--older-than", "0", "--status", "cancelled", "--kind", "count")
    assert (code, err) == (0, "")
    assert "pruned 1 job(s)" in out
    assert "2 item(s)" in out

    code, out, _ = run(db_path, "show", job.id)
    assert code == 0
    assert "history removed" in " ".join(out.split())
    assert "alice" in out
    assert "no longer needed" in out

    for command in (["retry", job.id], ["export", job.id], ["resume", job.id]):
        code, out, err = run(db_path, *command)
        assert code == 1, (command, out, err)
        assert "pruned" in err
        assert "Traceback" not in err

    code, out, _ = run(db_path, "prune", "--older-than", "0", "--purge")
    assert code == 0
    assert "deleted 1 job(s)" in out
    with pytest.raises(andon.JobNotFound):
        store.get(job.id)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--older-than", "30x"], "not a duration"),
        (["--older-than", "-3d"], "not a duration"),
        (["--older-than", "30d", "--status", "running"], "only finished"),
        (["--older-than", "30d", "--status", "nonsense"], "nonsense"),
        (["--older-than", "30d", "--batch", "0"], "batch"),
        ([], "older-than"),
    ],
)
def test_cli_prune_errors_are_clear(db_path: Path, store: andon.SqliteStore, args: list[str], words: str) -> None:
    code, out, err = run(db_path, "prune", *args)
    assert code in (1, 2), (out, err)
    assert words in err
    assert "Traceback" not in err


def test_a_worker_with_retention_prunes_old_history(store: andon.SqliteStore) -> None:
    job = finished_job(store)
    with andon.Worker(example_app, store, concurrency=1, retention_s=0.0, retention_every_s=0.05):
        pruned = wait_until(lambda: store.get(job.id).pruned_at, 10.0, "the worker's prune")
    assert pruned is not None
    assert store.events(job.id) == []


def test_bad_retention_settings_are_refused(store: andon.SqliteStore) -> None:
    with pytest.raises(andon.LifecycleError, match="retention_s"):
        andon.Worker(example_app, store, retention_s=-1.0)
    code, _, err = run(Path(store.url.removeprefix("sqlite:///")), "worker", "--retention", "soon")
    assert code == 2
    assert "not a duration" in err
