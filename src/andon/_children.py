"""Child processes that cannot outlive the job that started them.

Each child starts in its own process group, so a stop reaches the whole tree it makes
(a shell and its commands, a browser and its renderers). On Linux each child also gets
``PR_SET_PDEATHSIG = SIGKILL``, so it dies with the thread that started it even when
the worker itself is killed with SIGKILL and has no chance to clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from andon._cancel import Cancelled

__all__ = ["ChildGroup", "set_parent_death_signal"]

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()


def set_parent_death_signal() -> None:
    """Ask the kernel to SIGKILL this process when the thread that forked it exits.

    Runs in the forked child before ``exec`` (``preexec_fn``): it only calls a ctypes
    function that was resolved at import time, so it takes no lock the parent may hold.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildGroup:
    """The child processes of one job, stopped together (SIGTERM, then SIGKILL after grace)."""

    def __init__(self, grace_s: float, on_started: Callable[[int], None] | None = None) -> None:
        self._grace_s = grace_s
        self._on_started = on_started
        self._lock = threading.Lock()
        self._children: list[subprocess.Popen[Any]] = []
        self._stopping = False
        self._kill_timer: threading.Timer | None = None

    def popen(self, args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # Any: as Popen
        """Start a child in its own process group, tied to this job's life."""
        if "preexec_fn" in kwargs or "start_new_session" in kwargs or "process_group" in kwargs:
            raise TypeError("ctx.popen sets the process group and death signal itself")
        with self._lock:
            if self._stopping:
                raise Cancelled(None, "the job is stopping; no new child processes")
            child: subprocess.Popen[Any] = subprocess.Popen(
                args, process_group=0, preexec_fn=set_parent_death_signal, **kwargs
            )
            self._children.append(child)
        if self._on_started is not None:
            self._on_started(child.pid)
        return child

    def stop(self) -> None:
        """SIGTERM every child's group now; SIGKILL the survivors after the grace period."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            children = list(self._children)
        for child in children:
            _signal_group(child, signal.SIGTERM)
        if children:
            self._kill_timer = threading.Timer(self._grace_s, self.kill)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self) -> None:
        """SIGKILL every child's group that is still there."""
        with self._lock:
            self._stopping = True
            children = list(self._children)
        for child in children:
            _signal_group(child, signal.SIGKILL)

    def close(self) -> None:
        """The job ended: kill whatever is left and reap every child, so none is orphaned."""
        self.kill()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            with contextlib.suppress(Exception):
                child.wait()


def _signal_group(child: subprocess.Popen[Any], signum: int) -> None:
    # The child leads its own group (process_group=0), so its pid is the group id. The
    # group can outlive the leader (a shell's background command), so signal it even when
    # the leader already exited; ESRCH just means nothing is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
