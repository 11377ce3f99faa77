"""Smoke test of the PostgreSQL benchmark: it runs and reports (speed is not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import SERVER_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "postgres.py"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_postgres_benchmark_runs_quick(tmp_path: Path) -> None:
    require_postgres()
    out = tmp_path / "postgres.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--db", SERVER_URL, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert next(line for line in lines if line.startswith("measurement")).split() == [
        "measurement",
        "runs",
        "p50",
        "p99",
        "max",
    ]
    for label in ("(a) cancel call -> work stopped", "(b) cancel_many of 200 queued jobs"):
        assert any(line.startswith(label) and line.rstrip().endswith("ms") for line in lines), done.stdout
    report = json.loads(out.read_text())
    assert report["meta"]["quick"] is True
    assert set(report["results"]) == {"a_stopped", "a_acknowledged", "a_last_item", "a_store", "b_bulk", "d_claim"}
    assert all(result["runs"] > 0 for result in report["results"].values())
    assert [t["processes"] for t in report["throughput"]] == [1, 4]
    assert all(t["jobs_per_s"] > 0 for t in report["throughput"])
