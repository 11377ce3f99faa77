"""A job's items as a file to take away: JSON Lines, or CSV when every item is a flat object.

The items are read a page at a time and written a page at a time, so a job with gigabytes
of output exports in the memory of one page. A CSV needs its header before the first row,
and a refusal must come before the first byte is sent, so a CSV export reads the items
twice: once to check that they are flat and gather the columns, once to write them.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, final

from andon._errors import ItemsNotFlat
from andon._jobs import Job, ResultItem

__all__ = ["ResultsExport", "ResultsFormat", "export_results"]

Pages = Callable[[int, "int | None"], Iterator[list[ResultItem]]]
"""``pages(offset, limit)``: the job's items from ``offset`` on, at most ``limit``, a page at a time."""

SCALARS: Final = (str, int, float, bool, type(None))


class ResultsFormat(enum.StrEnum):
    """A file format for a job's items. Values are used in URLs and on the command line."""

    JSONL = "jsonl"
    """JSON Lines: each item's data, one JSON value per line."""
    CSV = "csv"
    """One row per item, one column per key; only for items that are flat JSON objects."""


_MEDIA_TYPES: Final = {ResultsFormat.JSONL: "application/jsonl", ResultsFormat.CSV: "text/csv; charset=utf-8"}


@final
class ResultsExport:
    """A job's items in one format, ready to be written out chunk by chunk (iterate it).

    Only the items stored when it was made are written (a running job may add more later).
    Each chunk is the text of one page of items.
    """

    def __init__(self, job: Job, format: ResultsFormat, pages: Pages, count: int, columns: list[str] | None) -> None:
        self.job = job
        """The job as it was read before its items."""
        self.format = format
        self.count = count
        """How many items it holds."""
        self.columns = columns
        """The CSV's columns, in the order the keys first appear (``None`` for JSON Lines)."""
        self._pages = pages

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        """A file name for it: ``<kind>-<job id>.<format>``, safe in a header and a path."""
        kind = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.job.kind).strip(".") or "job"
        return f"{kind}-{self.job.id}.{self.format.value}"

    def __iter__(self) -> Iterator[str]:
        if self.count == 0:
            return
        if self.columns is None:
            for page in self._pages(0, self.count):
                yield "".join(json.dumps(item.data, ensure_ascii=False) + "\n" for item in page)
            return
        yield _csv_text([self.columns])
        for page in self._pages(0, self.count):
            yield _csv_text(_row(item.data, self.columns) for item in page)


def export_results(job: Job, format: ResultsFormat, pages: Pages) -> ResultsExport:
    """Prepare ``job``'s items for export; for CSV, check every item and gather the columns.

    Raises:
        ItemsNotFlat: CSV was asked for and an item is not a JSON object of scalars.
    """
    if format is ResultsFormat.JSONL:
        return ResultsExport(job, format, pages, job.items_count, None)
    columns: dict[str, None] = {}  # a dict keeps the order keys first appear in
    count = 0
    for page in pages(0, None):
        for item in page:
            columns.update(dict.fromkeys(_flat_keys(job, item)))
        count += len(page)
    return ResultsExport(job, format, pages, count, list(columns))


def _flat_keys(job: Job, item: ResultItem) -> Iterable[str]:
    data = item.data
    if not isinstance(data, dict):
        raise ItemsNotFlat(job.id, item.seq, f"it is a JSON {_json_type(data)}, not an object")
    for key, value in data.items():
        if not isinstance(value, SCALARS):
            raise ItemsNotFlat(job.id, item.seq, f"its {key!r} is a JSON {_json_type(value)}")
    return data.keys()


def _json_type(value: Any) -> str:  # Any: a JSON value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    names = {dict: "object", list: "array", str: "string"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "number")


def _row(data: Any, columns: list[str]) -> list[str]:  # Any: a JSON value
    # Checked flat when the export was made; a job resumed since may have replaced the items
    # after its checkpoint, so what no longer fits is written as JSON text, not refused
    # half-way through a file already being sent.
    values = data if isinstance(data, dict) else {}
    return [_cell(values.get(column)) for column in columns]


_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
"""How a spreadsheet recognises a formula. Items often hold text from elsewhere (a crawled
page's title): such a cell is written with a leading ``'``, so opening the file runs nothing."""


def _cell(value: Any) -> str:  # Any: a JSON value
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    return json.dumps(value, ensure_ascii=False)  # true/false, numbers as JSON writes them


def _csv_text(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()
