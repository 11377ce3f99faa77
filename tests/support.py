"""Helpers shared by the test tiers: bounded polling and a look at processes in /proc."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str = "the condition", interval: float = 0.01
) -> None:
    """Poll ``condition``; fail naming ``what`` if it is not true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def proc_stat(pid: int | str) -> tuple[str, int, int] | None:
    """``(state, ppid, pgrp)`` from ``/proc/<pid>/stat``, or ``None`` if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie has ended; only its entry is left)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""
