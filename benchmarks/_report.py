"""What every benchmark script shares: percentiles, a latency summary, bounded waits, a table."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summary(label: str, samples: Sequence[float]) -> dict[str, Any]:  # Any: JSON values
    """p50/p99/max in milliseconds, with every sample, as written to the JSON output."""
    return {
        "label": label,
        "runs": len(samples),
        "p50_ms": ms(percentile(samples, 50)),
        "p99_ms": ms(percentile(samples, 99)),
        "max_ms": ms(max(samples)) if samples else None,
        "samples_ms": [ms(s) for s in samples],
    }


def wait_for(condition: Callable[[], bool], what: str, timeout: float, poll: float) -> None:
    """Poll ``condition``; end the benchmark naming ``what`` if it is not true in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise SystemExit(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def table(rows: list[list[str]]) -> str:
    """A plain-text table: the first row is the header, the first column left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
