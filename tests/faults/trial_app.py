"""The handler of the kill -9 trials: it announces each phase of its life in a side file.

Every line goes to ``<log_dir>/<job id>.log`` with one ``os.write`` on an ``O_APPEND``
descriptor: the kernel keeps it even when the process is SIGKILLed the next instant, so the
test knows exactly which phase the work had reached. Lines:

* ``start <attempt> <pid>`` - the handler began (the pid is the worker's for ``trial``, the
  child's for ``trial_process``);
* ``phase <name>`` - the test may kill now;
* ``emit <attempt> <i>`` - written *before* ``ctx.emit`` of item ``{"a": attempt, "i": i}``,
  so the items stored for an attempt can only be a prefix of these.

Phases (``phase`` param, first attempt only; a retry just emits a few items and returns):

* ``claim`` - no phase line: the test kills at a random moment after submitting.
* ``claimed`` - announced at once, then waits (a checkpoint) until killed.
* ``emitting`` - emits at a high rate, so flushes are in progress when the kill lands.
* ``finishing`` - emits a few items, announces, and returns at once: the kill lands while
  the attempt is being settled.
* ``cancelling`` - announces ``running``; after the test's cancel its slow cleanup announces
  ``cleanup`` and takes half a second, inside which the kill lands.

``counting`` and ``counting_process`` (issue 15) count like the example kind ``count``: emit
item ``i``, then checkpoint ``{"next": i + 1}``, in a tight loop (a short sleep every few
steps), and start from ``ctx.resumed``. Their ``start`` line names where the attempt starts:
``start <attempt> <pid> <first i>``, and ``done <attempt>`` follows the last item.
"""

from __future__ import annotations

import os
import time

import andon

app = andon.App(default_grace=0.5)

HOLD_S = 8.0
"""How long a phase waits for its kill before returning on its own (a bound, never reached)."""
GATE_S = 180.0
"""How long a counted job waits for its release before returning on its own (a bound)."""
RETRY_ITEMS = 20


class _SideLog:
    def __init__(self, log_dir: str, job_id: str) -> None:
        self._fd = os.open(os.path.join(log_dir, f"{job_id}.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        os.write(self._fd, f"{line}\n".encode())

    def close(self) -> None:
        os.close(self._fd)


def _emit(ctx: andon.Context, log: _SideLog, i: int) -> None:
    log.write(f"emit {ctx.attempt} {i}")
    ctx.emit({"a": ctx.attempt, "i": i})


def trial(ctx: andon.Context, phase: str, log_dir: str) -> dict[str, int]:
    log = _SideLog(log_dir, ctx.job_id)
    ctx.on_cleanup(log.close)
    log.write(f"start {ctx.attempt} {os.getpid()}")
    if ctx.attempt > 1 or phase == "claim":
        for i in range(RETRY_ITEMS):
            _emit(ctx, log, i)
        return {"attempt": ctx.attempt, "items": RETRY_ITEMS}
    if phase == "claimed":
        log.write("phase claimed")
        ctx.sleep(HOLD_S)
    elif phase == "emitting":
        _emit_for(ctx, log, HOLD_S)
    elif phase == "finishing":
        for i in range(10):
            _emit(ctx, log, i)
        log.write("phase finishing")
        return {"attempt": ctx.attempt, "items": 10}
    elif phase == "cancelling":
        _emit(ctx, log, 0)

        def slow_cleanup() -> None:
            log.write("phase cleanup")
            time.sleep(0.5)

        ctx.on_cleanup(slow_cleanup)
        log.write("phase running")
        ctx.sleep(HOLD_S)
    else:
        raise ValueError(f"unknown phase {phase!r}")
    return {"attempt": ctx.attempt, "items": -1}


def _emit_for(ctx: andon.Context, log: _SideLog, seconds: float) -> None:
    """Emit about 5,000 items a second: several flushes happen every 0.1 s."""
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        for _ in range(5):
            _emit(ctx, log, i)
            i += 1
        if i == 5:
            log.write("phase emitting")
        ctx.sleep(0.001)


def counting(
    ctx: andon.Context, n: int, log_dir: str, sleep_every: int = 5, hold_at: int = -1, release: str = ""
) -> dict[str, int]:
    """Count to ``n`` from where the last checkpoint left it; the first attempt, with
    ``hold_at``, announces ``phase holding`` after emitting that item, before its checkpoint,
    and waits there for its kill. With ``release`` (a path), every attempt that has counted
    to ``n`` announces ``phase gate`` and returns only once that file exists, so the job
    cannot finish before a test has made all its kills, however fast the machine counts."""
    log = _SideLog(log_dir, ctx.job_id)
    ctx.on_cleanup(log.close)
    first = ctx.resumed["next"] if ctx.resumed else 0
    log.write(f"start {ctx.attempt} {os.getpid()} {first}")
    for i in range(first, n):
        _emit(ctx, log, i)
        if i == hold_at and ctx.attempt == 1:
            log.write("phase holding")
            ctx.sleep(HOLD_S)
        ctx.checkpoint({"next": i + 1})
        if i % sleep_every == sleep_every - 1:
            ctx.sleep(0.001)
    if release:
        log.write("phase gate")
        deadline = time.monotonic() + GATE_S
        while not os.path.exists(release) and time.monotonic() < deadline:
            ctx.sleep(0.01)
    log.write(f"done {ctx.attempt}")
    return {"attempt": ctx.attempt, "items": n}


app.job("trial")(trial)
app.job("trial_process", isolation="process")(trial)
app.job("counting")(counting)
app.job("counting_process", isolation="process")(counting)
