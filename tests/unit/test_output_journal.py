"""An attempt's output beyond its memory budget goes to a journal file while the store
takes nothing, and comes back from it in order, each item once (issue 12, item 3).

The buffer is driven as the worker's flusher drives it (take, then restore on a failed
write), against a real file in a temporary folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from andon._output import OutputBuffer, ProgressUpdate

BUDGET = 4_000


def buffer(tmp_path: Path) -> OutputBuffer:
    return OutputBuffer("job-1", 1, 0, lambda: None, spool_dir=tmp_path, max_bytes=BUDGET)


def emit(out: OutputBuffer, seqs: range) -> None:
    for seq in seqs:
        out.emit(float(seq), f'{{"i":{seq},"pad":"{"x" * 80}"}}')


def drain(out: OutputBuffer, *, bounded: bool = True) -> list[int]:
    """Successful flushes until nothing is left; the seqs in the order the store got them."""
    seen: list[int] = []
    while True:
        with out.flush_lock:
            update = out.take(None)
        if not update.items:
            return seen
        if bounded:
            assert sum(len(item[2]) for item in update.items) <= 2 * BUDGET, "a chunk over the budget"
        seen.extend(seq for seq, _, _ in update.items)


def in_memory(out: OutputBuffer) -> int:
    return out._bytes


def test_beyond_the_budget_items_go_to_a_journal_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = buffer(tmp_path)
    emit(out, range(500))
    assert out.journalled
    assert in_memory(out) <= BUDGET
    journals = list(tmp_path.glob("job-1.1.jsonl"))
    assert len(journals) == 1
    assert journals[0].stat().st_size > 10 * BUDGET
    assert "the store is not taking its output" in caplog.text
    assert drain(out) == list(range(500))
    assert not journals[0].exists(), "the journal outlived its items"


def test_failed_flushes_put_every_chunk_back_in_order(tmp_path: Path) -> None:
    out = buffer(tmp_path)
    emit(out, range(300))
    for _ in range(5):  # an outage: every write fails
        with out.flush_lock:
            update = out.take(None)
            out.restore(update)
    emit(out, range(300, 400))
    assert drain(out) == list(range(400))


def test_a_spill_during_a_failed_flush_of_memory_keeps_the_order(tmp_path: Path) -> None:
    out = buffer(tmp_path)
    emit(out, range(10))  # in memory, under the budget
    with out.flush_lock:
        update = out.take(None)  # the flusher takes them...
        emit(out, range(10, 200))  # ...the handler goes on and spills meanwhile...
        out.restore(update)  # ...and the write fails
    assert drain(out) == list(range(200))


def test_close_returns_whatever_is_left_journal_included(tmp_path: Path) -> None:
    out = buffer(tmp_path)
    emit(out, range(250))
    update: ProgressUpdate = out.close(None)
    assert [seq for seq, _, _ in update.items] == list(range(250))
    assert list(tmp_path.iterdir()) == []


def test_without_a_spool_folder_nothing_is_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    out = OutputBuffer("job-1", 1, 0, lambda: None, max_bytes=BUDGET)
    emit(out, range(100))
    assert not out.journalled
    assert drain(out, bounded=False) == list(range(100))
    assert caplog.text == ""
