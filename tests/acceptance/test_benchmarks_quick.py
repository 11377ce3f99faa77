"""Smoke test of the cancel-latency benchmark: it runs and reports (speed is not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "cancel_latency.py"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cancel_latency_benchmark_runs_quick(tmp_path: Path) -> None:
    out = tmp_path / "cancel_latency.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("measurement"))
    assert header.split() == ["measurement", "runs", "p50", "p99", "max"]
    for label in ("(a) in-process", "(b) cross-process", "(c) spin"):
        assert any(line.startswith(label) and line.rstrip().endswith("ms") for line in lines), done.stdout
    report = json.loads(out.read_text())
    assert report["meta"]["quick"] is True
    assert set(report["results"]) == {"a_last_item", "a_store", "b_last_item", "b_store", "c_spin"}
    assert all(result["runs"] > 0 for result in report["results"].values())
