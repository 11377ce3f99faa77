"""Smoke tests of the benchmarks: they run and report (speed is not judged here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import SERVER_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/<script>`` from the repository root; it must exit 0 within ``timeout`` s."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_stops_benchmark_runs_quick_and_leaves_no_orphans(tmp_path: Path) -> None:
    require_postgres()
    out = tmp_path / "stops.json"
    done = run_benchmark("stops.py", "--quick", "--db", SERVER_URL, "--out", str(out), timeout=210)
    assert done.stdout.splitlines()[0].split()[:2] == ["measurement", "runs"], done.stdout
    report = json.loads(out.read_text())
    assert report["meta"]["quick"] is True
    rows = report["rows"]
    assert {row["group"] for row in rows} == {
        "cooperative stop",
        "cooperative stop through the REST API",
        "uncooperative stop",
        "child processes",
    }
    labels = [row["label"] for row in rows]
    for setup in ("in-process SQLite", "other process SQLite", "other process PostgreSQL"):
        for handler in ("sync check", "async await"):
            assert sum(label.startswith(f"{setup}, {handler}") for label in labels) == 3, labels
    for store in ("SQLite", "PostgreSQL"):  # the REST API's cancel?wait=true: the work's last step, the answer
        assert sum(label.startswith(f"other process {store} via API, sync check") for label in labels) == 2, labels
    for case in (
        "CPU loop, grace 0 s",
        "CPU loop, default settings, never looks at its context",
        "time.sleep(3600), grace 0 s",
        "time.sleep(3600), default settings, never looks at its context",
    ):
        assert sum(label.startswith(case) for label in labels) == 2, labels
    assert "thread, CPU loop, default settings, never looks at its context: cancel -> injected stop" in labels
    latencies = [row for row in rows if row["kind"] == "latency"]
    assert all(row["runs"] > 0 and len(row["samples_ms"]) == row["runs"] for row in latencies), latencies
    orphans = [row for row in rows if row["kind"] == "figure"]
    assert len(orphans) == 5, orphans  # four child modes and the whole-run scan
    assert all(row["value"] == 0 and row["runs"] > 0 for row in orphans), orphans


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_suite_runs_quick_and_writes_its_table(tmp_path: Path) -> None:
    """The other groups through the suite itself: one table, targets beside the figures."""
    require_postgres()
    done = run_benchmark(
        "suite.py",
        "--quick",
        "--only",
        "throughput,overheads,scale",
        "--db",
        SERVER_URL,
        "--out",
        str(tmp_path),
        timeout=210,
    )
    assert "QUICK MODE" in done.stdout
    report = json.loads((tmp_path / "suite.json").read_text())
    assert report["machine"]["quick"] is True
    assert set(report["machine"]["seconds"]) == {"throughput", "overheads", "scale", "total"}
    labels = [f"{row['group']}: {row['label']}" for row in report["rows"]]
    for fragment in ("no-op jobs, 1 worker process", "4 worker processes", "1,000 jobs per call", "ctx.check()"):
        assert any(fragment in label for label in labels), (fragment, labels)
    for store in ("SQLite", "PostgreSQL"):
        assert any(label.startswith("scale: claim") and label.endswith(store) for label in labels), labels
        assert any("ever started" in label and label.endswith(store) for label in labels), labels
        for calls in ("ctx.checkpoint() per call", "ctx.emit() per call", "ctx.emit() + ctx.checkpoint() per step"):
            assert f"overhead: {calls}, stored, {store}" in labels, labels
    # What must hold at any speed: no queued job that was cancelled ever started.
    started = [row for row in report["rows"] if "ever started" in row["label"]]
    assert all(row["value"] == 0 for row in started), started
    table = (tmp_path / "suite.md").read_text()
    assert table.startswith("| measurement")
    assert "target" in table.splitlines()[0]
    assert len(table.splitlines()) == len(labels) + 2


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_startup_benchmark_runs_quick() -> None:
    done = run_benchmark("startup.py", "--quick", "--no-postgres", timeout=100)
    for label in ("python -c pass", "andon --help", "andon ls, empty SQLite database"):
        assert f"cli start-up: {label}" in done.stdout, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_retention_benchmark_runs_quick() -> None:
    require_postgres()
    done = run_benchmark("retention.py", "--quick", "--db", SERVER_URL, timeout=210)
    for store in ("SQLite", "PostgreSQL"):
        assert f"claim during the prune, 20,000 finished jobs, {store}" in done.stdout, done.stdout
        assert f"andon_items after the prune, {store}" in done.stdout, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_limits_benchmark_runs_quick() -> None:
    """Claim cost with a limit in force, beside none, on both stores."""
    require_postgres()
    done = run_benchmark("limits.py", "--quick", "--db", SERVER_URL, timeout=210)
    for way in ("no limit", "max_running in force", "rate in force"):
        for store in ("SQLite", "PostgreSQL"):
            assert f"limits: claim, {way}, {store}" in done.stdout, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_metrics_benchmark_runs_quick() -> None:
    """One scrape's cost, on both stores, after the trigger counted every job the fill ended."""
    require_postgres()
    done = run_benchmark("metrics.py", "--quick", "--db", SERVER_URL, timeout=210)
    for store in ("SQLite", "PostgreSQL"):
        assert f"metrics: scrape of /metrics, 30,080 jobs (10,080 active), {store}" in done.stdout, done.stdout
        assert f"plan of metrics_active on {store}" in done.stdout, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jobpath_benchmark_runs_quick() -> None:
    """The job path's rows: rates at 1 and 10 slots, 4 processes, the backlog, what a job
    costs the database (counted from a traced worker), and the floor of a plain loop."""
    require_postgres()
    done = run_benchmark("jobpath.py", "--quick", "--db", SERVER_URL, timeout=280)
    for label in (
        "no-op jobs/s after the first, 1 worker process, 1 slot(s), SQLite",
        "no-op jobs/s after the first, 1 worker process, 10 slot(s), PostgreSQL",
        "no-op jobs/s after the first, 4 worker processes x 10 slots, PostgreSQL",
        "no-op jobs/s at 1 slot, 3,000 queued",
        "round trips per no-op job, 1 slot(s), worker side, PostgreSQL",
        "transactions per no-op job, 10 slot(s), worker side, PostgreSQL",
        "andon_jobs updates that were HOT",
        "floor: plain psycopg loop, claim, commit, finish, commit, PostgreSQL",
    ):
        assert label in done.stdout, done.stdout
    # A job costs at least its claim and its end: the counts come from real traces.
    trips = re.search(r"round trips per no-op job, 1 slot\(s\), worker side, PostgreSQL: ([0-9.]+)", done.stdout)
    assert trips is not None, done.stdout
    assert float(trips.group(1)) >= 1, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_gil_benchmark_runs_quick() -> None:
    """A handler holding the GIL beside cooperative ones, on both stores (its rounds check
    that every job ended cancelled)."""
    require_postgres()
    done = run_benchmark("gil.py", "--quick", "--db", SERVER_URL, timeout=150)
    for store in ("SQLite", "PostgreSQL"):
        for measurement in (
            "thread isolation, pure-Python CPU loop, grace 2 s: cancel -> stopped",
            "cooperative cancel of another job while one handler spins: cancel -> last step",
        ):
            assert f"GIL-holding handler: {store}, {measurement}" in done.stdout, done.stdout
