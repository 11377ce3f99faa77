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


# -- rows of the suite's table ------------------------------------------------------------
#
# Every measurement module returns a list of rows (plain dicts, written as JSON as they are):
# a latency row has p50/p99/max over its samples, a figure row has one value with a unit;
# either may carry a target, and the suite prints whether it was met.


def latency_row(
    group: str,
    label: str,
    samples: Sequence[float],
    *,
    target_p99_ms: float | None = None,
    target_p50_ms: float | None = None,
    target_p95_ms: float | None = None,
    note: str = "",
) -> dict[str, Any]:  # Any: JSON values
    """A latency (``samples`` in seconds) with an optional p99, p95 and/or p50 bound in ms.

    A row with a p95 bound also carries its p95 (``p95_ms``), shown beside p50 / p99 / max.
    """
    row = summary(label, samples)
    row.update(group=group, kind="latency", note=note, target_p99_ms=target_p99_ms, target_p50_ms=target_p50_ms)
    if target_p95_ms is not None:
        row.update(target_p95_ms=target_p95_ms, p95_ms=ms(percentile(samples, 95)))
    return row


def figure_row(
    group: str,
    label: str,
    value: float,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    runs: int = 1,
    note: str = "",
) -> dict[str, Any]:  # Any: JSON values
    """One figure (a rate, a count, a size) with an optional lower or upper bound."""
    return {
        "group": group,
        "kind": "figure",
        "label": label,
        "value": value,
        "unit": unit,
        "runs": runs,
        "at_least": at_least,
        "at_most": at_most,
        "note": note,
    }


def target_text(row: dict[str, Any]) -> str:  # Any: JSON values
    if row["kind"] == "latency":
        parts = []
        if row.get("target_p50_ms") is not None:
            parts.append(f"p50 <= {row['target_p50_ms']:g} ms")
        if row.get("target_p95_ms") is not None:
            parts.append(f"p95 <= {row['target_p95_ms']:g} ms")
        if row.get("target_p99_ms") is not None:
            parts.append(f"p99 <= {row['target_p99_ms']:g} ms")
        return ", ".join(parts)
    if row.get("at_least") is not None:
        return f">= {_number(row['at_least'])} {row['unit']}"
    if row.get("at_most") is not None:
        return f"<= {_number(row['at_most'])} {row['unit']}"
    return ""


def met(row: dict[str, Any]) -> bool | None:  # Any: JSON values
    """Whether the row's target was met; ``None`` when it has none."""
    checks: list[bool] = []
    if row["kind"] == "latency":
        if row.get("target_p50_ms") is not None and row["p50_ms"] is not None:
            checks.append(row["p50_ms"] <= row["target_p50_ms"])
        if row.get("target_p95_ms") is not None and row.get("p95_ms") is not None:
            checks.append(row["p95_ms"] <= row["target_p95_ms"])
        if row.get("target_p99_ms") is not None and row["p99_ms"] is not None:
            checks.append(row["p99_ms"] <= row["target_p99_ms"])
    else:
        if row.get("at_least") is not None:
            checks.append(row["value"] >= row["at_least"])
        if row.get("at_most") is not None:
            checks.append(row["value"] <= row["at_most"])
    return all(checks) if checks else None


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def figure_text(row: dict[str, Any]) -> str:  # Any: JSON values
    if row["kind"] == "latency":
        text = f"{_cell(row['p50_ms'])} / {_cell(row['p99_ms'])} / {_cell(row['max_ms'])} ms"
        return text if row.get("p95_ms") is None else f"{text} (p95 {_cell(row['p95_ms'])})"
    return f"{_number(row['value'])} {row['unit']}"


def _cell(value_ms: float | None) -> str:
    return "-" if value_ms is None else f"{value_ms:.1f}" if abs(value_ms) < 100 else f"{value_ms:.0f}"


def rows_table(rows: Sequence[dict[str, Any]]) -> str:  # Any: JSON values
    """The suite's table: measurement, runs, figure (p50 / p99 / max, or the value), target, met."""
    lines = [["measurement", "runs", "p50 / p99 / max, or value", "target", "met"]]
    for row in rows:
        verdict = met(row)
        lines.append(
            [
                f"{row['group']}: {row['label']}",
                str(row["runs"]),
                figure_text(row),
                target_text(row),
                "-" if verdict is None else "yes" if verdict else "NO",
            ]
        )
    return table(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:  # Any: JSON values
    """The same table in Markdown, for the README."""
    out = ["| measurement | runs | p50 / p99 / max, or value | target | met |", "|---|---|---|---|---|"]
    for row in rows:
        verdict = met(row)
        mark = "-" if verdict is None else "yes" if verdict else "**no**"
        out.append(
            f"| {row['group']}: {row['label']} | {row['runs']} | {figure_text(row)} | {target_text(row)} | {mark} |"
        )
    return "\n".join(out)
