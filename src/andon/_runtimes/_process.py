"""Handlers in a child process of their own, with the context proxied over a pipe.

Guarantee: **always stops.** A cancel is first sent to the child as a flag (checkpoints
raise; stop method ``cooperative``). After ``grace`` seconds the child's whole process group
gets SIGTERM, which raises ``Cancelled`` in the handler so its cleanups run (``terminated``);
after another grace period it gets SIGKILL (``killed``). A pure-Python loop that never
checks, a hung C call and plain ``subprocess.Popen`` children started by the handler all stop.

The child leads its own process group, and dies when the worker does: its pipe to the
worker closes and it kills its group, and ``PR_SET_PDEATHSIG`` covers the rest.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any, Final, final

from andon._attempt import Attempt, ended_now, error_outcome, failure, stopped, succeeded
from andon._cancel import Cancelled, CancelReason, CancelToken, StopMethod
from andon._children import set_parent_death_signal
from andon._context import Context
from andon._jobs import ErrorInfo, Outcome
from andon._runtimes import Escalation

__all__ = ["ProcessExecution"]

# Forkserver: children start as forks of a small, single-threaded server that already
# imported andon (fast, and safe, unlike forking a multi-threaded worker).
_mp: Final = multiprocessing.get_context("forkserver")
_mp.set_forkserver_preload(["andon"])


class _Terminated(Cancelled):
    """Raised in the child's main thread by its SIGTERM handler."""


@final
class ProcessExecution:
    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._signalled: StopMethod | None = None
        self._child_pids: list[int] = []
        self._pending_signal: signal.Signals | None = None

    def run(self) -> Outcome:
        attempt = self._attempt
        job = attempt.job
        parent_conn, child_conn = _mp.Pipe(duplex=True)
        process = _mp.Process(
            target=_child_main,
            args=(
                child_conn,
                attempt.spec.handler,
                job.id,
                job.kind,
                job.attempt,
                job.params,
                max(attempt.spec.grace_s, 0.5),
            ),
            name=f"andon-job-{job.id}",
        )
        try:
            process.start()
        except Exception as exc:  # e.g. an unpicklable handler or params, or no forkserver
            parent_conn.close()
            child_conn.close()
            return ended_now(failure(exc, attempt.token))
        child_conn.close()
        pid = process.pid
        assert pid is not None  # set by a successful start()
        with self._lock:
            self._conn, self._pid = parent_conn, pid
            pending = self._pending_signal
        if attempt.token.requested:
            self.deliver()
        if pending is not None:
            # An escalation came due while the process was starting: apply it now.
            _signal_group(pid, pending)
        try:
            outcome = self._pump(parent_conn)
            process.join()
            if outcome is None:
                outcome = self._death_outcome(process.exitcode)
        finally:
            with self._lock:
                self._conn = None
                groups = [pid, *self._child_pids]
            # The job's own group (plain Popen children of the handler) and the ctx.popen
            # groups: whatever is left of them goes with the job, however it ended. A group
            # id cannot be reused while any member is alive, so this never hits a stranger.
            for group in groups:
                _signal_group(group, signal.SIGKILL, leader_too=False)
            parent_conn.close()
            process.close()
        return ended_now(outcome)

    def _pump(self, conn: Connection) -> Outcome | None:
        """Relay the child's messages until it reports its end (or dies: ``None``)."""
        buffer = self._attempt.buffer
        token = self._attempt.token
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return None
            tag = message[0]
            if tag == "emit":
                buffer.emit(message[1], message[2])
            elif tag == "progress":
                buffer.progress(message[1], message[2], message[3])
            elif tag == "child":
                with self._lock:
                    self._child_pids.append(message[1])
            elif tag == "done":
                _, kind, payload, acknowledged_at = message
                if acknowledged_at is not None and token.acknowledged_at is None:
                    token.acknowledged_at = acknowledged_at
                return self._done_outcome(kind, payload)

    def _done_outcome(self, kind: str, payload: Any) -> Outcome:  # Any: a pickled message part
        token = self._attempt.token
        if kind == "succeeded":
            return succeeded(payload)
        if kind == "stopped":
            return stopped(token, StopMethod(payload))
        return error_outcome(ErrorInfo(*payload), token)

    def _death_outcome(self, exitcode: int | None) -> Outcome:
        token = self._attempt.token
        if token.requested and self._signalled is not None:
            return stopped(token, self._signalled)
        if exitcode is not None and exitcode < 0:
            name = signal.Signals(-exitcode).name
            if token.requested and -exitcode in (signal.SIGTERM, signal.SIGKILL):
                return stopped(
                    token,
                    StopMethod.KILLED if -exitcode == signal.SIGKILL else StopMethod.TERMINATED,
                )
            return error_outcome(ErrorInfo("ProcessDied", f"the handler's process was killed by {name}"), token)
        return error_outcome(ErrorInfo("ProcessDied", f"the handler's process exited with code {exitcode}"), token)

    def deliver(self) -> None:
        token = self._attempt.token
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            with contextlib.suppress(OSError, ValueError):
                conn.send(("cancel", token.reason.value if token.reason else None, token.message))

    def escalate(self, step: int) -> Escalation:
        if step not in (1, 2):
            return Escalation.NOTHING
        signum = signal.SIGTERM if step == 1 else signal.SIGKILL
        with self._lock:
            self._signalled = StopMethod.TERMINATED if step == 1 else StopMethod.KILLED
            if self._pid is None:
                # Still starting: run() sends it as soon as the process exists.
                self._pending_signal = signum
                return Escalation.APPLIED
            if self._conn is None:
                return Escalation.NOTHING  # already over
            groups = [self._pid] if step == 1 else [self._pid, *self._child_pids]
        for group in groups:
            _signal_group(group, signum)
        return Escalation.APPLIED


def _signal_group(pid: int, signum: int, *, leader_too: bool = True) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        # The child may not have made its own group yet (it does so first thing).
        if leader_too:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
    except PermissionError:
        pass


# -- in the child ------------------------------------------------------------------


@final
class _PipeSink:
    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        self._send = send

    def emit(self, at: float, encoded: str) -> None:
        self._send(("emit", at, encoded))

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        self._send(("progress", done, total, message))

    def child_started(self, pid: int) -> None:
        self._send(("child", pid))


def _child_main(
    conn: Connection,
    handler: Callable[..., Any],
    job_id: str,
    kind: str,
    attempt: int,
    params: dict[str, Any],  # Any: JSON params
    child_grace_s: float,
) -> None:
    os.setpgid(0, 0)
    set_parent_death_signal()
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    token = CancelToken()
    threading.Thread(target=_read_parent, args=(conn, token), name="andon-parent-pipe", daemon=True).start()
    signal.signal(signal.SIGTERM, _raise_terminated)
    ctx = Context(
        job_id=job_id,
        kind=kind,
        attempt=attempt,
        params=params,
        token=token,
        sink=_PipeSink(send),
        child_grace_s=child_grace_s,
    )
    done: tuple[str, Any]
    try:
        done = ("succeeded", handler(ctx, **params))
    except _Terminated:
        done = ("stopped", StopMethod.TERMINATED.value)
    except Cancelled as exc:
        done = ("stopped", StopMethod.COOPERATIVE.value) if token.requested else ("failed", _error(exc))
    except BaseException as exc:
        done = ("failed", _error(exc))
    ctx._close()
    try:
        send(("done", done[0], done[1], token.acknowledged_at))
    except Exception as exc:  # e.g. an unpicklable result
        send(("done", "failed", _error(exc), token.acknowledged_at))
    # No conn.close(): the reader thread would take the closed pipe for a dead worker.
    os._exit(0)


def _error(exc: BaseException) -> tuple[str, str, str]:
    return (type(exc).__qualname__, str(exc) or repr(exc), "".join(traceback.format_exception(exc)))


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated(None, "stopped by SIGTERM")


def _read_parent(conn: Connection, token: CancelToken) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            # The worker is gone: nobody can record what this job does any more, so stop
            # the whole group now rather than run on as an orphan.
            os.killpg(0, signal.SIGKILL)
            return
        if message[0] == "cancel":
            reason = CancelReason(message[1]) if message[1] else CancelReason.USER
            token.request(reason, message[2])
