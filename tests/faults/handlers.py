"""Handlers that misbehave on purpose, each the way a real handler can go wrong.

Process-isolated handlers must be importable by the child (pickled by reference), so they
live in this module rather than inside a test.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

import andon

app = andon.App(default_grace=0.2)

MEMORY_LIMIT_MIB = 256
CPU_LIMIT_S = 1
OPEN_FILES_LIMIT = 32


@app.job("ok")
def ok(ctx: andon.Context, n: int = 3) -> dict[str, int]:
    """A job that works: proves the worker still serves after a fault."""
    for i in range(n):
        ctx.emit({"i": i})
    return {"n": n}


@app.job("raises")
def raises(ctx: andon.Context) -> None:
    ctx.emit({"before": "the error"})
    raise ValueError("the handler broke on purpose")


@app.job("raises_in_process", isolation="process")
def raises_in_process(ctx: andon.Context) -> None:
    ctx.emit({"before": "the error"})
    raise ValueError("the handler broke on purpose")


@app.job("hangs", isolation="process", timeout=0.5)
def hangs(ctx: andon.Context) -> None:
    """A pure-Python loop that never reaches a checkpoint: SIGTERM stops it."""
    ctx.emit({"started": True})
    while True:
        pass


@app.job("hangs_in_thread", timeout=0.5)
def hangs_in_thread(ctx: andon.Context) -> None:
    """The same loop in a thread: the injected exception stops it."""
    ctx.emit({"started": True})
    while True:
        pass


@app.job("exits", isolation="process")
def exits(ctx: andon.Context, code: int = 3) -> None:
    ctx.emit({"before": "exit"})
    sys.exit(code)


@app.job("exits_hard", isolation="process")
def exits_hard(ctx: andon.Context, code: int = 7) -> None:
    ctx.emit({"before": "exit"})
    os._exit(code)


@app.job("aborts", isolation="process")
def aborts(ctx: andon.Context) -> None:
    ctx.emit({"before": "abort"})
    os.abort()


@app.job("segfaults", isolation="process")
def segfaults(ctx: andon.Context) -> None:
    ctx.emit({"before": "segfault"})
    ctypes.string_at(0)


@app.job("leaks", isolation="process", limits=andon.Limits(memory_mib=MEMORY_LIMIT_MIB))
def leaks(ctx: andon.Context) -> None:
    """Allocates 16 MiB at a time and keeps it all, as a leak does."""
    hoard = []
    for i in range(10_000):
        hoard.append(bytearray(16 * 1024 * 1024))
        if i % 4 == 0:
            ctx.emit({"mib": 16 * (i + 1)})


@app.job("burns_cpu", isolation="process", limits=andon.Limits(cpu_s=CPU_LIMIT_S))
def burns_cpu(ctx: andon.Context) -> None:
    ctx.emit({"started": True})
    total = 0
    while True:
        total += 1


@app.job("opens_files", isolation="process", limits=andon.Limits(open_files=OPEN_FILES_LIMIT))
def opens_files(ctx: andon.Context) -> None:
    ctx.emit({"opening": OPEN_FILES_LIMIT * 2})
    held = []
    for _ in range(OPEN_FILES_LIMIT * 2):
        held.append(open(os.devnull))  # noqa: SIM115 - held open on purpose


@app.job("within_limits", isolation="process", limits=andon.Limits(memory_mib=512, cpu_s=30, open_files=64))
def within_limits(ctx: andon.Context) -> dict[str, int]:
    """Limits a well-behaved handler never reaches: it succeeds, and reports them."""
    import resource

    data = bytearray(32 * 1024 * 1024)
    return {
        "memory": resource.getrlimit(resource.RLIMIT_AS)[0],
        "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
        "files": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "size": len(data),
    }


@app.job("ignores_sigterm", isolation="process")
def ignores_sigterm(ctx: andon.Context) -> None:
    """Ignores SIGTERM and never checks: only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.emit({"ignoring": "SIGTERM"})
    while True:
        time.sleep(0.01)


@app.job("burns_cpu_in_c", isolation="process", limits=andon.Limits(cpu_s=CPU_LIMIT_S))
def burns_cpu_in_c(ctx: andon.Context) -> None:
    """One long C call (minutes of PBKDF2): the main thread never gets back to Python, so
    the SIGXCPU handler cannot run and the kernel's hard limit has to kill the process."""
    import hashlib

    ctx.emit({"started": True})
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 10**9)


def _long_then_short(ctx: andon.Context, first_s: float) -> dict[str, int]:
    """Runs ``first_s`` seconds on its first attempt (a checkpoint every 20 ms, one item each),
    and returns at once on a later one: a job a shutdown interrupts, then finished elsewhere."""
    end = time.monotonic() + (first_s if ctx.attempt == 1 else 0.0)
    ticks = 0
    while time.monotonic() < end:
        ctx.emit({"attempt": ctx.attempt, "tick": ticks})
        ticks += 1
        ctx.sleep(0.02)
    return {"attempt": ctx.attempt, "ticks": ticks}


app.job("long_then_short")(_long_then_short)
app.job("long_then_short_process", isolation="process")(_long_then_short)
