"""``andon db upgrade``, ``andon worker --upgrade-db`` and the CLI on PostgreSQL URLs.

Bad input (a bad URL, an unreachable server, a schema that is missing) prints one line
and exits 1, never a traceback, and never a password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import andon
from andon._storage._postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from andon._storage._sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from andon.cli import cli
from andon.examples import app
from tests.acceptance.cli_checks import assert_one_error_line

pytestmark = pytest.mark.timeout(60)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_db_upgrade_creates_then_does_nothing(empty_schema: str) -> None:
    first = run("db", "upgrade", "--db", empty_schema)
    assert first.exit_code == 0, first.output
    assert f"upgraded from version 0 to {POSTGRES_SCHEMA_VERSION}" in first.stdout
    again = run("db", "upgrade", "--db", empty_schema)
    assert again.exit_code == 0, again.output
    assert f"already at version {POSTGRES_SCHEMA_VERSION}; nothing to do" in again.stdout
    listed = run("ls", "--db", empty_schema)
    assert listed.exit_code == 0, listed.output
    assert "no jobs" in listed.stdout


def test_db_upgrade_on_sqlite_reports_its_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = run("db", "upgrade", "--db", url)
    assert first.exit_code == 0, first.output
    assert f"upgraded from version 0 to {SQLITE_SCHEMA_VERSION}" in first.stdout
    assert "nothing to do" in run("db", "upgrade", "--db", url).stdout


def test_commands_on_a_schema_never_created_say_how_to_create_it(empty_schema: str) -> None:
    assert_one_error_line(run("ls", "--db", empty_schema), "no andon tables yet", "andon db upgrade")


def test_unreachable_server_is_one_line_without_the_password() -> None:
    url = "postgresql://someone:hunter2@127.0.0.1:1/test?connect_timeout=2"
    for command in (("ls",), ("db", "upgrade")):
        result = run(*command, "--db", url)
        assert_one_error_line(result, "cannot connect to PostgreSQL at postgresql://someone@127.0.0.1:1/test")
        assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://root@localhost/test", "unsupported database URL scheme 'mysql'"),
        ("postgresql://root@127.0.0.1/test?schema=No-Way", "bad schema name"),
        ("postgresql://root@127.0.0.1/test?not_an_option=1", "not a valid PostgreSQL URL"),
    ],
)
def test_bad_urls_are_one_line(url: str, fragment: str) -> None:
    assert_one_error_line(run("db", "upgrade", "--db", url), fragment)
    assert_one_error_line(run("ls", "--db", url), fragment)


@pytest.mark.slow
def test_worker_upgrades_the_schema_when_asked_and_runs_jobs(empty_schema: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "andon.cli", "worker", "--db", empty_schema, "--upgrade-db", "--concurrency", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert worker.stdout is not None
        banner = worker.stdout.readline()
        assert "andon worker" in banner
        assert empty_schema.split("?")[0] in banner
        with andon.connect(empty_schema, app, actor="test") as client:
            job = client.submit("count", {"n": 2, "interval_s": 0.01})
            assert client.wait_finished(job.id, timeout=30).status is andon.JobStatus.SUCCEEDED
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert f"upgraded from version 0 to {POSTGRES_SCHEMA_VERSION}" in stderr
    assert "Traceback" not in stderr
