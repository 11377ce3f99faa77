"""An attempt's output on its way to the store: items and progress, buffered in memory and,
past a budget, in a journal file, so that nothing a handler emitted is lost or reordered
while the store is slow or away."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import final

from andon._cancel import Cancelled
from andon._jobs import Outcome

__all__ = ["FLUSH_AT_ITEMS", "MAX_BUFFER_BYTES", "AttemptEnd", "OutputBuffer", "ProgressUpdate", "SavedState"]


@dataclass(frozen=True, slots=True)
class SavedState:
    """A checkpoint on its way to the store: the state as JSON, and how many items came before it."""

    items: int
    at: float
    encoded: str


@dataclass(slots=True)
class ProgressUpdate:
    """What a running attempt produced since the last write (items are already JSON)."""

    job_id: str
    attempt: int
    items: list[tuple[int, float, str]] = field(default_factory=list)
    """``(seq, at, encoded JSON)``, in order."""
    progress: tuple[float, float | None, str | None] | None = None
    acknowledged_at: float | None = None
    checkpoint: SavedState | None = None
    """The latest checkpoint, written after ``items`` in the same transaction; every item
    before it is in ``items`` or already stored."""

    @property
    def is_empty(self) -> bool:
        return not self.items and self.progress is None and self.acknowledged_at is None and self.checkpoint is None


@dataclass(frozen=True, slots=True)
class AttemptEnd:
    """The end of one attempt, as its worker reports it to the store: its outcome and the
    output it still had buffered (the store decides the job's state from it:
    ``andon._jobs.decide_settlement``)."""

    job_id: str
    attempt: int
    outcome: Outcome
    update: ProgressUpdate | None = None


FLUSH_AT_ITEMS = 1000
MAX_BUFFER_BYTES = 8 * 1024 * 1024
"""How much output one attempt holds in memory before the rest goes to its journal file."""
_ITEM_OVERHEAD = 64  # a tuple, an int, a float and a str object around each item's text

Item = tuple[int, float, str]
log = logging.getLogger("andon.worker")


@final
class OutputBuffer:
    """Items and progress a running attempt produced and the store has not seen yet.

    The worker's flusher writes it out in batches. Closing it (when the attempt settles)
    waits for a flush in progress, so every item reaches the store before the final state
    and nothing can be added after it: a job never emits after it ended.

    Memory is bounded: while the store takes nothing (an outage), items beyond
    ``max_bytes`` move to a journal file in ``spool_dir`` (oldest first; the log says so),
    and come back from it, in order and a chunk at a time, once the store takes writes.
    """

    def __init__(
        self,
        job_id: str,
        attempt: int,
        start_seq: int,
        wake_flusher: Callable[[], None],
        *,
        spool_dir: Path | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._next_seq = start_seq
        self._items: list[Item] = []
        self._bytes = 0
        self._progress: tuple[float, float | None, str | None] | None = None
        self._checkpoint: SavedState | None = None
        self._lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self._closed = False
        self._wake_flusher = wake_flusher
        self._spool_dir = spool_dir
        self._max_bytes = MAX_BUFFER_BYTES if max_bytes is None else max_bytes
        self._journal: _Journal | None = None

    def emit(self, at: float, encoded: str) -> None:
        with self._lock:
            if self._closed:
                raise Cancelled(None, "this job already ended; nothing more can be emitted")
            self._items.append((self._next_seq, at, encoded))
            self._bytes += len(encoded) + _ITEM_OVERHEAD
            self._next_seq += 1
            full = len(self._items) >= FLUSH_AT_ITEMS
            if self._bytes > self._max_bytes:
                self._spill()
        if full:
            self._wake_flusher()

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        with self._lock:
            if not self._closed:
                self._progress = (done, total, message)

    def checkpoint(self, at: float, encoded: str) -> None:
        """Keep the handler's latest state; it goes to the store with the items before it."""
        with self._lock:
            if self._closed:
                raise Cancelled(None, "this job already ended; nothing more can be stored")
            self._checkpoint = SavedState(self._next_seq, at, encoded)
        # It rides with the next regular flush: waking the flusher for each one would make a
        # handler that checkpoints after every item write without pause.

    def child_started(self, pid: int) -> None:
        """Child processes are tracked by the context itself; nothing to store."""

    @property
    def journalled(self) -> bool:
        """Whether items wait in the journal file (the store has not taken them yet)."""
        with self._lock:
            return self._journal is not None and not self._journal.empty

    def take(self, acknowledged_at: float | None) -> ProgressUpdate:
        """What is pending, as one update (call with :attr:`flush_lock` held).

        With a journal, the oldest chunk of it (at most ``max_bytes``); the items in memory
        follow once the journal is empty, so the store always sees them in order.
        """
        with self._lock:
            journal = self._journal
            checkpoint = None
            if journal is not None and not journal.empty:
                # Items before the checkpoint may still be in the journal or in memory: it
                # waits until they all go out, with the memory's last batch.
                items = journal.read(self._max_bytes)
            else:
                if journal is not None:
                    journal.remove()
                    self._journal = None
                items, self._items, self._bytes = self._items, [], 0
                checkpoint, self._checkpoint = self._checkpoint, None
            progress, self._progress = self._progress, None
        return ProgressUpdate(self.job_id, self.attempt, items, progress, acknowledged_at, checkpoint)

    def restore(self, update: ProgressUpdate) -> None:
        """Put back what a failed flush took, ahead of anything emitted since."""
        with self._lock:
            journal = self._journal
            if journal is not None and journal.unread():
                pass  # the chunk came from the journal: it is read again from there
            elif journal is not None and not journal.empty:
                # Taken from memory, and spilled behind it meanwhile: older than the journal.
                journal.prepend(update.items)
            else:
                self._items[:0] = update.items
                self._bytes += sum(len(item[2]) + _ITEM_OVERHEAD for item in update.items)
                if self._bytes > self._max_bytes:
                    self._spill()
            if self._progress is None:
                self._progress = update.progress
            if self._checkpoint is None:
                self._checkpoint = update.checkpoint

    def close(self, acknowledged_at: float | None) -> ProgressUpdate:
        """Refuse further output and return the rest, after any flush in progress.

        The worker empties the journal first (:attr:`journalled`); what would be left in it
        is read whole here, so nothing is ever dropped.
        """
        with self.flush_lock:
            with self._lock:
                self._closed = True
                journal, self._journal = self._journal, None
                if journal is not None:
                    self._items[:0] = journal.read(None)
                    journal.remove()
            return self.take(acknowledged_at)

    def discard(self) -> None:
        """Remove the journal file, if any (the attempt is over)."""
        with self._lock:
            if self._journal is not None:
                self._journal.remove()
                self._journal = None

    def _spill(self) -> None:
        """Move every item in memory to the end of the journal (call with ``_lock`` held)."""
        if self._spool_dir is None or not self._items:
            return
        if self._journal is None:
            self._journal = _Journal(self._spool_dir / f"{self.job_id}.{self.attempt}.jsonl")
            log.warning(
                "job %s: the store is not taking its output; items beyond %d bytes go to %s until it does",
                self.job_id,
                self._max_bytes,
                self._journal.path,
            )
        self._journal.append(self._items)
        self._items, self._bytes = [], 0


@final
class _Journal:
    """An append-only file of items, read back in order from a moving offset.

    ``read`` advances the offset provisionally; a failed flush puts it back (``unread``),
    a successful one is confirmed by the next ``read``.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a+b")  # noqa: SIM115  # kept open for the journal's life
        self._offset = 0
        self._last_read_from: int | None = None

    @property
    def empty(self) -> bool:
        return self._offset >= self._file.seek(0, os.SEEK_END)

    def append(self, items: list[Item]) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(_lines(items))
        self._file.flush()

    def read(self, max_bytes: int | None) -> list[Item]:
        self._last_read_from = self._offset
        self._file.seek(self._offset)
        items: list[Item] = []
        size = 0
        while max_bytes is None or size < max_bytes:
            line = self._file.readline()
            if not line:
                break
            seq, at, encoded = json.loads(line)
            items.append((seq, at, encoded))
            size += len(line)
        self._offset = self._file.tell()
        return items

    def prepend(self, items: list[Item]) -> None:
        """Put ``items`` before everything unread (rare: a failed flush during a spill)."""
        fresh = self.path.with_suffix(".new")
        with open(fresh, "wb") as out:
            out.write(_lines(items))
            self._file.seek(self._offset)
            while chunk := self._file.read(1 << 20):
                out.write(chunk)
        self._file.close()
        os.replace(fresh, self.path)
        self._file = open(self.path, "a+b")  # noqa: SIM115  # kept open for the journal's life
        self._offset, self._last_read_from = 0, None

    def unread(self) -> bool:
        """Undo the last read (its flush failed); ``False`` if there was none to undo."""
        if self._last_read_from is None:
            return False
        self._offset, self._last_read_from = self._last_read_from, None
        return True

    def remove(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _lines(items: list[Item]) -> bytes:
    return b"".join(json.dumps(item, separators=(",", ":")).encode() + b"\n" for item in items)
