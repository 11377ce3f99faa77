"""Smoke test of the load benchmark (``benchmarks/load.py --quick``) against a real ``andon serve``.

Speed is not judged here; what is asserted holds at any speed: no request failed, many
concurrent cancels of one job made exactly one transition and all answered the same final
state, every event-stream client got events and saw jobs end, and no log shows an error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import SERVER_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "load.py"


def run_quick(tmp_path: Path, *args: str) -> dict[str, Any]:  # Any: the decoded JSON report
    out = tmp_path / "load.json"
    # A session of its own, so a hung run is killed with the server and worker it started.
    with subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--soak-minutes", "0.1", "--out", str(out), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        start_new_session=True,
    ) as run:
        try:
            output, _ = run.communicate(timeout=200)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            output, _ = run.communicate()
            pytest.fail(f"the load benchmark did not end within 200 s:\n{output}")
    assert run.returncode == 0, output
    header = next(line for line in output.splitlines() if line.startswith("latency"))
    assert header.split() == ["latency", "runs", "p50", "p99", "max"]
    report: dict[str, Any] = json.loads(out.read_text())  # Any: decoded JSON
    assert report["failed"] == []
    return report


def check_report(report: dict[str, Any], sections: set[str]) -> None:  # Any: decoded JSON
    results = report["results"]
    assert set(results) == sections

    if "submit" in sections:
        submit = results["submit"]
        assert submit["errors"] == 0
        assert submit["stored"] == submit["jobs"] == 300
        assert submit["statuses"] == {"succeeded": 300}

    cancel = results["cancel"]
    assert cancel["errors"] == 0
    assert cancel["final_states"] == {"cancelled": cancel["cancels"]}
    assert cancel["cancel_requested_events"] == 1
    assert [line for line in cancel["history"] if line.endswith("-> cancelled")] == [
        "cancelled: cancelling -> cancelled"
    ]

    sse = results["sse"]
    assert sse["submit_errors"] == 0
    assert sse["stream_errors"] == []
    assert sse["events_per_client"]["min"] > 1
    assert sse["jobs_seen_ending_per_client"]["min"] > 0

    if "soak" in sections:
        soak = results["soak"]
        assert soak["errors"] == {}
        assert sum(soak["requests"].values()) > 0
        assert {"server", "worker"} <= set(soak["processes"])
    for section in results.values():
        for process in section["logs"].values():
            assert process["exit_code"] == 0
            assert process["problems"] == 0, process["problem_lines"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_load_benchmark_quick_on_sqlite(tmp_path: Path) -> None:
    report = run_quick(tmp_path)
    assert report["meta"]["quick"] is True
    assert report["meta"]["store"] == "sqlite"
    check_report(report, {"submit", "cancel", "sse", "soak"})
    assert (tmp_path / "load-logs" / "soak-server.log").is_file()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_load_benchmark_quick_on_postgres(tmp_path: Path) -> None:
    require_postgres()
    # The sections where concurrency meets the store, on the server's own worker (two
    # processes fewer to start); the rest costs time and proves little more.
    report = run_quick(
        tmp_path, "--store", "postgres", "--db", SERVER_URL, "--sections", "cancel,sse", "--worker", "embedded"
    )
    assert report["meta"]["store"] == "postgres"
    check_report(report, {"cancel", "sse"})
