"""Finding processes a test started, to prove none is left behind."""

from __future__ import annotations

import os

from tests.support import cmdline, descendants, is_alive


def job_processes(root: int | None = None) -> list[int]:
    """Live descendants of ``root`` (default: this process) other than multiprocessing's
    forkserver, which stays for the whole session: the children that run jobs."""
    return [
        pid
        for pid in descendants(os.getpid() if root is None else root)
        if "forkserver" not in cmdline(pid) and "resource_tracker" not in cmdline(pid)
    ]


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (inherited by every descendant,
    even one whose parent died and that was adopted by init)."""
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in environ.read() and is_alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found
