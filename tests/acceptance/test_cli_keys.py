"""``andon submit --key K --on-conflict ...`` end to end against a real SQLite file (issue 16):
the output says whether a job was submitted or an existing one answered."""

from __future__ import annotations

import pytest

import andon
from tests.acceptance.test_cli import Run, assert_one_error_line

pytestmark = pytest.mark.timeout(60)


def test_a_second_submit_with_the_key_prints_the_existing_job(run: Run, client: andon.Client) -> None:
    first = run("submit", "count", "n=3", "--key", "nightly")
    assert first.exit_code == 0, first.output
    [job] = client.list_jobs().items
    assert job.key == "nightly"
    assert f"submitted {job.id}" in first.stdout
    again = run("submit", "count", "n=3", "--key", "nightly")
    assert again.exit_code == 0, again.output
    assert f"existing job {job.id}" in again.stdout
    assert "nothing was submitted" in again.stdout
    assert len(client.list_jobs().items) == 1
    quiet = run("submit", "count", "--key", "nightly", "-q")
    assert quiet.stdout == f"{job.id}\n"


def test_supersede_prints_the_job_it_stopped(run: Run, client: andon.Client) -> None:
    run("submit", "count", "--key", "nightly")
    [old] = client.list_jobs().items
    result = run("submit", "count", "--key", "nightly", "--on-conflict", "supersede")
    assert result.exit_code == 0, result.output
    assert f"superseded {old.id}" in result.stdout
    stopped = client.get(old.id)
    assert stopped.status is andon.JobStatus.CANCELLED
    assert stopped.cancel is not None
    assert stopped.cancel.reason is andon.CancelReason.SUPERSEDED


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--key", ""], ["key", "empty"]),
        (["--key", "k" * 300], ["key", "256"]),
    ],
)
def test_bad_keys_are_refused_in_one_line(
    run: Run, client: andon.Client, args: list[str], fragments: list[str]
) -> None:
    assert_one_error_line(run("submit", "count", *args), *fragments)
    assert client.list_jobs().items == []


def test_an_unknown_policy_is_a_usage_error(run: Run, client: andon.Client) -> None:
    result = run("submit", "count", "--key", "k", "--on-conflict", "replace")
    assert result.exit_code == 2
    assert client.list_jobs().items == []
