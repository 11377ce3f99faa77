"""The kinds ``benchmarks/stops.py`` stops, and the step file each of them writes.

A job under test records its own progress in a small memory-mapped file whose path is its
``path`` param, so "it stopped" is judged by the work itself, not by andon's status: the
wall-clock time of its last step, how many steps it made, its process id, the process id
of the child it started, and (cooperative handlers) when it saw the stop. The measuring
process reads the same file (the mapping is shared through the page cache).

Used in this process and in ``andon worker --app _stops_jobs:app`` processes; the
process-isolated handlers are pickled by reference, so this module must be importable
there too (``benchmarks/`` on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

import andon

__all__ = ["STEP_S", "StepFile", "Steps", "app", "create_step_file", "read_steps"]

STEP_S: Final = 0.001
"""How long one step of the cooperative handlers takes (then they record it and check)."""

_LAYOUT: Final = struct.Struct("<dqqqd")
"""last step (time.time()), steps made, the handler's pid, its child's pid, stop seen at."""

app = andon.App()  # default_grace stays andon's default (2 s): the "default grace" rows use it


@dataclass(frozen=True, slots=True)
class Steps:
    """What a step file says."""

    last_at: float
    count: int
    pid: int
    child_pid: int
    stopped_at: float
    """When the handler saw the stop (its checkpoint raised, its await was cancelled); 0 if never."""


def create_step_file(path: Path) -> None:
    path.write_bytes(bytes(_LAYOUT.size))


def read_steps(path: Path) -> Steps:
    return Steps(*_LAYOUT.unpack(path.read_bytes()[: _LAYOUT.size]))


@final
class StepFile:
    """The writing side, used by a handler: each write is one aligned store into the map."""

    def __init__(self, path: str) -> None:
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), _LAYOUT.size)
        self._count = 0
        self.pid(os.getpid())

    def step(self) -> None:
        self._count += 1
        struct.pack_into("<dq", self._map, 0, time.time(), self._count)

    def pid(self, pid: int) -> None:
        struct.pack_into("<q", self._map, 16, pid)

    def child(self, pid: int) -> None:
        struct.pack_into("<q", self._map, 24, pid)

    def stopped(self) -> None:
        struct.pack_into("<d", self._map, 32, time.time())


# -- cooperative ----------------------------------------------------------------------


@app.job("coop_sync")
def coop_sync(ctx: andon.Context, path: str) -> None:
    """1 ms of work per step, then record the step, then ``ctx.check()``."""
    steps = StepFile(path)
    try:
        while True:
            time.sleep(STEP_S)
            steps.step()
            ctx.check()
    finally:
        steps.stopped()


@app.job("coop_async")
async def coop_async(ctx: andon.Context, path: str) -> None:
    """Await 1 ms per step, then record the step; andon cancels the task at its await."""
    steps = StepFile(path)
    try:
        while True:
            await asyncio.sleep(STEP_S)
            steps.step()
    finally:
        steps.stopped()


# -- uncooperative (process-isolated, never check) ---------------------------------------


def _cpu_loop(path: str) -> None:
    steps = StepFile(path)
    steps.step()
    while True:
        for _ in range(2_000):
            pass
        steps.step()


def _blocked_sleep(path: str) -> None:
    StepFile(path).step()
    time.sleep(3600)


@app.job("cpu_loop_grace0", isolation="process", grace=0)
def cpu_loop_grace0(ctx: andon.Context, path: str) -> None:
    """A pure-Python loop that never checks; stopped by SIGTERM at once (grace 0)."""
    _cpu_loop(path)


@app.job("cpu_loop", isolation="process")
def cpu_loop(ctx: andon.Context, path: str) -> None:
    """A pure-Python loop that never looks at its context: default settings give it no grace
    (it does not listen), so SIGTERM comes at once."""
    _cpu_loop(path)


@app.job("cpu_loop_thread")
def cpu_loop_thread(ctx: andon.Context, path: str) -> None:
    """The same loop in a thread, default settings: ``Cancelled`` is injected at once."""
    steps = StepFile(path)
    steps.step()
    try:
        while True:
            for _ in range(2_000):
                pass
            steps.step()
    finally:
        steps.stopped()


@app.job("blocked_sleep_grace0", isolation="process", grace=0)
def blocked_sleep_grace0(ctx: andon.Context, path: str) -> None:
    """Blocked in ``time.sleep(3600)``; stopped by SIGTERM at once (grace 0)."""
    _blocked_sleep(path)


@app.job("blocked_sleep", isolation="process")
def blocked_sleep(ctx: andon.Context, path: str) -> None:
    """Blocked in ``time.sleep(3600)``, never looked at its context: SIGTERM at once."""
    _blocked_sleep(path)


@app.job("first_step")
def first_step(ctx: andon.Context, path: str) -> None:
    """The job queued behind a stopped one: records when the slot got to run it."""
    StepFile(path).step()


# -- child processes ------------------------------------------------------------------
#
# ``marker`` is the child's argument (``3600.<digits>``, still an hour for ``sleep``): it
# makes the benchmark's own children recognisable in /proc among everyone else's.


def _ctx_child(ctx: andon.Context, path: str, marker: str) -> None:
    steps = StepFile(path)
    child = ctx.popen(["sleep", marker])
    steps.child(child.pid)
    steps.step()
    child.wait()
    ctx.check()


@app.job("child_ctx_thread")
def child_ctx_thread(ctx: andon.Context, path: str, marker: str) -> None:
    """``ctx.popen`` a child and wait for it, in a thread-isolated handler."""
    _ctx_child(ctx, path, marker)


@app.job("child_ctx_process", isolation="process")
def child_ctx_process(ctx: andon.Context, path: str, marker: str) -> None:
    """``ctx.popen`` a child and wait for it, in a process-isolated handler."""
    _ctx_child(ctx, path, marker)


@app.job("child_plain_checks", isolation="process")
def child_plain_checks(ctx: andon.Context, path: str, marker: str) -> None:
    """Plain ``subprocess.Popen``, andon is not told; the handler waits at a checkpoint."""
    steps = StepFile(path)
    child = subprocess.Popen(["sleep", marker])
    steps.child(child.pid)
    steps.step()
    ctx.sleep(3600)


@app.job("child_plain_blocked", isolation="process", grace=0)
def child_plain_blocked(ctx: andon.Context, path: str, marker: str) -> None:
    """Plain ``subprocess.Popen``, andon is not told; the handler blocks in ``wait()``."""
    steps = StepFile(path)
    child = subprocess.Popen(["sleep", marker])
    steps.child(child.pid)
    steps.step()
    child.wait()
