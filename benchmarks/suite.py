"""The benchmark suite: every measurement, one table with the targets beside the figures.

Usage::

    ./scripts/bench [--quick] [--only GROUPS] [--db POSTGRES_URL | --no-postgres] [--out DIR]

Runs the measurement modules in turn (``stops``, ``gil``, ``throughput``, ``jobpath``, ``overheads``, ``scale``,
``startup``, ``limits``, ``metrics``; ``--only stops,scale`` for some), prints their rows as
one table and writes ``suite.json`` (every row with its samples, and the machine) and ``suite.md`` (the table
in Markdown, as the README shows it) to ``benchmarks/out/`` (or ``--out``).

PostgreSQL rows use ``--db`` (default ``$ANDON_TEST_POSTGRES_URL`` or the local server),
each module in schemas of its own that it drops. If the server cannot be reached they are
left out with a warning, unless ``CI=true``, where that is an error. ``--quick`` runs a
handful of each (the test suite does, to keep this code working); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

import _common
from _report import markdown_table, met, rows_table

MODULES = ("stops", "gil", "throughput", "jobpath", "overheads", "scale", "retention", "startup", "limits", "metrics")


def postgres_or_none(url: str, required: bool) -> str | None:
    try:
        with psycopg.connect(_common.server_only(url), connect_timeout=3):
            return url
    except psycopg.OperationalError as exc:
        if required:
            raise SystemExit(f"PostgreSQL at {url} is not reachable (CI=true needs it): {exc}") from exc
        print(f"WARNING: PostgreSQL at {url} is not reachable; its rows are left out ({exc})", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a handful of runs each: a smoke test")
    parser.add_argument("--only", default=",".join(MODULES), help=f"comma-separated, of: {', '.join(MODULES)}")
    parser.add_argument("--db", default=_common.DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=_common.OUT)
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(MODULES))
    if unknown:
        parser.error(f"unknown group(s): {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    postgres = None if args.no_postgres else postgres_or_none(args.db, os.environ.get("CI") == "true")
    machine: dict[str, Any] = {**_common.machine(), "quick": args.quick}
    if postgres is not None:
        machine["postgres"] = _common.postgres_version(postgres)
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    for name in chosen:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        module = importlib.import_module(name)
        rows += module.measure(args.quick, postgres)
        seconds[name] = round(time.monotonic() - started, 1)
        print(f"   ({seconds[name]:.0f} s)", flush=True)
    machine["seconds"] = {**seconds, "total": round(time.monotonic() - began, 1)}
    print()
    print(
        f"andon {machine['andon']} - Python {machine['python']} - {machine['cpus']} CPUs ({machine['cpu']})"
        + (f" - PostgreSQL {machine['postgres']}" if postgres else " - no PostgreSQL")
        + (" - QUICK MODE: figures not meaningful" if args.quick else "")
    )
    print()
    print(rows_table(rows))
    missed = [row for row in rows if met(row) is False]
    print(f"\n{len(rows)} rows, {len(missed)} target(s) missed, {machine['seconds']['total']:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suite.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    (args.out / "suite.md").write_text(markdown_table(rows) + "\n")
    print(f"written: {args.out / 'suite.json'}, {args.out / 'suite.md'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
