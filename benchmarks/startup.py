"""Start-up: how long a CLI command takes as a whole process, from exec to exit.

Usage::

    python benchmarks/startup.py [--quick]

Each command runs ``RUNS`` times after one warm-up run (which fills the OS file cache), one
after the other, and the wall-clock time of each whole process is a sample: ``python -c
pass`` (the floor any Python command pays), ``andon --help``, and ``andon ls`` on an empty
SQLite database. Commands other than ``serve`` must not import the web stack (FastAPI,
uvicorn), which cost each of them about 0.3 s; the target on ``andon ls`` keeps it so.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import andon
from _report import latency_row

RUNS = 10
ANDON = str(Path(sys.executable).with_name("andon"))  # the console script, as users run it


def run_times(command: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` runs of ``command``, after one warm-up run."""
    samples = []
    for index in range(runs + 1):
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False, timeout=60)
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        if index:
            samples.append(elapsed)
    return samples


def measure(quick: bool, postgres_url: str | None) -> list[dict[str, Any]]:  # Any: JSON rows
    del postgres_url  # start-up is measured on SQLite only: a server round trip is not start-up
    runs = 2 if quick else RUNS
    rows = []
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as folder:
        url = f"sqlite:///{folder}/empty.db"
        andon.upgrade_database(url)
        cases = [
            ("python -c pass (the floor)", [sys.executable, "-c", "pass"], None),
            ("andon --help", [ANDON, "--help"], None),
            ("andon ls, empty SQLite database", [ANDON, "ls", "--db", url], 400.0),
        ]
        for label, command, target_p50_ms in cases:
            samples = run_times(command, runs)
            rows.append(latency_row("cli start-up", label, samples, target_p50_ms=target_p50_ms))
            print(f"  {label}: p50 {sorted(samples)[len(samples) // 2] * 1000:.0f} ms", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(_common.group_main(__doc__, measure))
