"""Job ids: UUIDv7 strings, which sort by creation time (RFC 9562)."""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["is_job_id", "new_job_id"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_job_id() -> str:
    """A new UUIDv7 as a string; ids made in one process strictly increase."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same (or an earlier, if the clock stepped back) millisecond: keep order with a
            # counter in the 12 "rand_a" bits, borrowing the next millisecond on overflow.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the form of a job id (so a lookup with it makes sense)."""
    try:
        return uuid.UUID(text).version == 7 and len(text) == 36
    except ValueError:
        return False
