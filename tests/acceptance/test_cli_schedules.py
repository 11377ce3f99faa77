"""``andon schedules`` end to end against a real SQLite file (issue 17): each command's
output, and bad input as one error line with exit code 1 (or 2 for usage)."""

from __future__ import annotations

import pytest

import andon
from tests.acceptance.test_cli import Run, assert_one_error_line

pytestmark = pytest.mark.timeout(60)


def test_add_list_trigger_ticks_pause_resume_rm(run: Run, client: andon.Client) -> None:
    added = run("schedules", "add", "nightly", "count", "n=2", "--cron", "0 3 * * *", "--tz", "Europe/Paris")
    assert added.exit_code == 0, added.output
    assert "added nightly" in added.stdout
    listed = run("schedules", "list")
    assert "nightly" in listed.stdout
    assert "Europe/Paris" in listed.stdout
    assert "leader: none" in listed.stdout
    triggered = run("schedules", "trigger", "nightly")
    assert triggered.exit_code == 0, triggered.output
    [job] = client.list_jobs().items
    assert "triggered" in triggered.stdout
    assert job.id in triggered.stdout
    assert job.schedule == "nightly"
    again = run("schedules", "trigger", "nightly")
    assert "skipped" in again.stdout
    ticks = run("schedules", "ticks", "nightly")
    assert ticks.stdout.index("skipped") < ticks.stdout.index("triggered")
    assert run("schedules", "pause", "nightly").exit_code == 0
    assert "paused by cli" in run("schedules").stdout
    assert "resumed nightly" in run("schedules", "resume", "nightly").stdout
    assert run("schedules", "rm", "nightly").exit_code == 0
    assert "no schedules" in run("schedules", "list").stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["add", "s", "count", "--cron", "61 * * * *"], ["bad cron expression"]),
        (["add", "s", "count", "--cron", "* * * * *", "--tz", "Mars/Olympus"], ["unknown time zone"]),
        (["add", "s", "count"], ["exactly one of cron and every"]),
        (["add", "s", "nope", "--every", "5"], ["unknown job kind"]),
        (["add", "s", "count", "n=many", "--every", "5"], ["invalid params"]),
        (["rm", "ghost"], ["no schedule named 'ghost'"]),
        (["pause", "ghost"], ["no schedule named 'ghost'"]),
        (["trigger", "ghost"], ["no schedule named 'ghost'"]),
        (["ticks", "ghost"], ["no schedule named 'ghost'"]),
    ],
)
def test_bad_input_is_one_error_line(run: Run, args: list[str], fragments: list[str]) -> None:
    result = run("schedules", *args)
    assert result.exit_code == 1, result.output
    assert_one_error_line(result, *fragments)


def test_an_app_schedule_cannot_be_removed_here(run: Run, store: andon.SqliteStore) -> None:
    store.sync_schedules([andon.ScheduleSpec(name="declared", kind="count", every_s=60)], "w")
    result = run("schedules", "rm", "declared")
    assert result.exit_code == 1
    assert_one_error_line(result, "declared in the app", "pause it")
