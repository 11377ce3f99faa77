"""A job's items as JSON Lines and CSV (``andon._export``), over pages given in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from andon import ItemsNotFlat, Job, JobStatus, ResultItem, ResultsFormat
from andon._export import export_results


def _job(count: int, kind: str = "count") -> Job:
    return Job(id="job-1", kind=kind, params={}, status=JobStatus.RUNNING, created_at=0.0, items_count=count)


class Items:
    """Items served two to a page, counting how many pages were read."""

    def __init__(self, data: list[Any]) -> None:  # Any: JSON values
        self.items = [ResultItem("job-1", seq, 1, 0.0, value) for seq, value in enumerate(data)]
        self.reads = 0

    def __call__(self, offset: int, limit: int | None) -> Iterator[list[ResultItem]]:
        end = len(self.items) if limit is None else min(len(self.items), offset + limit)
        for start in range(offset, end, 2):
            self.reads += 1
            yield self.items[start : min(start + 2, end)]


def test_json_lines_hold_each_items_data_on_a_line() -> None:
    data = [{"i": 0}, [1, 2], "é", None, {"deep": {"x": 1}}]
    export = export_results(_job(len(data)), ResultsFormat.JSONL, Items(data))
    text = "".join(export)
    assert [json.loads(line) for line in text.splitlines()] == data
    assert export.media_type == "application/jsonl"
    assert export.filename == "count-job-1.jsonl"


def test_json_lines_stop_at_the_items_the_job_had_when_asked() -> None:
    items = Items([{"i": i} for i in range(5)])
    export = export_results(_job(3), ResultsFormat.JSONL, items)
    assert "".join(export).splitlines() == ['{"i": 0}', '{"i": 1}', '{"i": 2}']


def test_csv_has_a_column_per_key_in_the_order_keys_first_appear() -> None:
    data = [{"i": 0, "name": "a,b"}, {"i": 1, "ok": True}, {"name": None, "x": 1.5}]
    export = export_results(_job(3), ResultsFormat.CSV, Items(data))
    assert export.columns == ["i", "name", "ok", "x"]
    rows = list(csv.reader(io.StringIO("".join(export))))
    assert rows == [["i", "name", "ok", "x"], ["0", "a,b", "", ""], ["1", "", "true", ""], ["", "", "", "1.5"]]
    assert export.media_type.startswith("text/csv")


def test_csv_reads_the_items_twice_a_page_at_a_time() -> None:
    items = Items([{"i": i} for i in range(5)])
    export = export_results(_job(5), ResultsFormat.CSV, items)
    assert items.reads == 3
    assert len(list(export)) == 1 + 3  # the header, then one chunk per page
    assert items.reads == 6


@pytest.mark.parametrize(
    ("item", "problem"),
    [(3, "a JSON number"), ("x", "a JSON string"), ([1], "a JSON array"), ({"a": {"b": 1}}, "'a' is a JSON object")],
)
def test_csv_of_items_that_are_not_flat_objects_is_refused_before_anything_is_written(
    item: Any, problem: str
) -> None:  # Any: JSON
    with pytest.raises(ItemsNotFlat, match=problem) as caught:
        export_results(_job(2), ResultsFormat.CSV, Items([{"a": 1}, item]))
    assert caught.value.seq == 1
    assert "JSON Lines" in str(caught.value)


def test_no_items_make_an_empty_file() -> None:
    assert list(export_results(_job(0), ResultsFormat.CSV, Items([]))) == []
    assert list(export_results(_job(0), ResultsFormat.JSONL, Items([]))) == []


def test_the_file_name_keeps_only_safe_characters_of_the_kind() -> None:
    export = export_results(_job(0, kind='a "b"/c'), ResultsFormat.CSV, Items([]))
    assert export.filename == "a_b_c-job-1.csv"


def test_csv_text_a_spreadsheet_would_run_as_a_formula_is_written_inert() -> None:
    link = '=HYPERLINK("http://127.0.0.1/x","click")'
    data: list[Any] = [{"title": t} for t in (link, "+1", "@SUM(A1)", "-2", "plain", -2)]
    export = export_results(_job(6), ResultsFormat.CSV, Items(data))
    rows = list(csv.reader(io.StringIO("".join(export))))
    assert [row[0] for row in rows[1:]] == ["'" + link, "'+1", "'@SUM(A1)", "'-2", "plain", "-2"]
