"""Handlers in a child process of their own, with the context proxied over a pipe.

Guarantee: **always stops.** A cancel is first sent to the child as a flag (cancel points
raise; stop method ``cooperative``). After ``grace`` seconds (at once for a handler that has
not reached a cancel point: the child reports its first over the pipe) the child's whole
process group gets SIGTERM, which raises ``Cancelled`` in the handler so its cleanups run (``terminated``);
after another grace period it gets SIGKILL (``killed``). A pure-Python loop that never
checks, a hung C call and plain ``subprocess.Popen`` children started by the handler all stop.

The child leads its own process group, and dies when the worker does: its pipe to the
worker closes and it kills its group, and ``PR_SET_PDEATHSIG`` covers the rest.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import math
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any, Final, final

from andon import _errors
from andon._attempt import Attempt
from andon._cancel import CancelReason, CancelToken, StopMethod
from andon._children import set_parent_death_signal
from andon._clock import SYSTEM_CLOCK
from andon._context import Context, checked_progress
from andon._errors import AndonError, ConfigurationError, ParentStopping
from andon._family import NOW, Due
from andon._jobs import ErrorInfo, Job, Outcome, ResultItem
from andon._registry import Limits
from andon._stop import (
    Step,
    Terminated,
    death_outcome,
    ended_now,
    error_outcome,
    failure,
    stop_method_of,
    stopped,
    succeeded,
)

__all__ = ["ProcessExecution", "preload_for"]

# Forkserver: children start as forks of a small, single-threaded server that already
# imported andon (fast, and safe, unlike forking a multi-threaded worker).
_mp: Final = multiprocessing.get_context("forkserver")
_mp.set_forkserver_preload(["andon"])


def preload_for(handlers: Iterable[Callable[..., object]]) -> None:
    """Have the forkserver import, once, what every job child would import again.

    Each child re-runs the worker's main script (multiprocessing does, so that handlers
    defined there can be unpickled): under ``andon worker`` that imported ``andon.cli``,
    Typer and Rich in every job, 0.5-2.5 s before its handler started. With the modules the
    main script and the handlers come from already in the forkserver, a child inherits them
    and re-running the script costs about a millisecond. Takes effect if called before the
    first process-isolated job of this process starts the forkserver.
    """
    names = {"andon"}
    main = sys.modules.get("__main__")
    for value in vars(main).values() if main is not None else ():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str):
            names.add(name)
    names.update(handler.__module__ for handler in handlers)
    # Never a main module itself: importing it by name would run it.
    _mp.set_forkserver_preload(sorted(n for n in names if n.split(".")[-1] not in ("__main__", "__mp_main__")))


_CPU_SAMPLE_S = 0.1  # how often a CPU-limited child's CPU time is read (hard limit is >= 1 s past soft)


class _CpuLimitExceeded(BaseException):
    """Raised in the child's main thread by its SIGXCPU handler (``RLIMIT_CPU``'s soft limit).

    A ``BaseException``, so a handler's ``except Exception`` cannot swallow it.
    """


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
        # The child's CPU time as last seen, sampled while it runs under a CPU limit: the
        # forkserver (its parent) may reap it before we can read what it used at the end.
        self._cpu_seen: float | None = None

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
                attempt.spec.limits,
                attempt.resumed,
            ),
            name=f"andon-job-{job.id}",
        )
        try:
            process.start()
        except Exception as exc:  # e.g. an unpicklable handler or params, or no forkserver
            parent_conn.close()
            child_conn.close()
            return ended_now(failure(exc, attempt.token), attempt.clock)
        child_conn.close()
        pid = process.pid
        assert pid is not None  # set by a successful start()
        with self._lock:
            self._conn, self._pid = parent_conn, pid
            pending = self._pending_signal
        self.vouched()
        if attempt.token.requested:
            self.deliver()
        if pending is not None:
            # An escalation came due while the process was starting: apply it now.
            _signal_group(pid, pending)
        try:
            outcome = self._pump(parent_conn, pid)
            if outcome is None:
                # A dead child's CPU time is readable only until it is reaped (by the
                # forkserver, which may already have done so): keep the larger reading.
                last = _cpu_seconds(pid)
                if last is not None:
                    self._cpu_seen = max(last, self._cpu_seen or 0.0)
            process.join()
            if outcome is None:
                outcome = death_outcome(
                    process.exitcode, attempt.token, self._signalled, attempt.spec.limits, self._cpu_seen
                )
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
        return ended_now(outcome, attempt.clock)

    def _pump(self, conn: Connection, pid: int) -> Outcome | None:
        """Relay the child's messages until it reports its end (or dies: ``None``)."""
        buffer = self._attempt.buffer
        token = self._attempt.token
        limits = self._attempt.spec.limits
        sample = limits is not None and limits.cpu_s is not None
        while True:
            try:
                if sample:
                    # Under a CPU limit, look at the child's CPU time between messages.
                    while not conn.poll(_CPU_SAMPLE_S):
                        seen = _cpu_seconds(pid)
                        if seen is not None:
                            self._cpu_seen = seen
                message = conn.recv()
            except (EOFError, OSError):
                return None
            tag = message[0]
            if tag == "emit":
                buffer.emit(message[1], message[2])
            elif tag == "progress":
                # The child's context checked it; checked again, as the worker writes it.
                with contextlib.suppress(TypeError, ValueError):
                    buffer.progress(*checked_progress(message[1], message[2], message[3]))
            elif tag == "checkpoint":
                buffer.checkpoint(message[1], message[2])
            elif tag == "listening":
                token.listen()
            elif tag == "child":
                with self._lock:
                    self._child_pids.append(message[1])
            elif tag == "family":
                self._answer_family(conn, message[1], message[2], message[3])
            elif tag == "done":
                _, kind, payload, acknowledged_at = message
                if acknowledged_at is not None and token.acknowledged_at is None:
                    token.acknowledged_at = acknowledged_at
                return self._done_outcome(kind, payload)

    def _answer_family(self, conn: Connection, call: int, name: str, args: tuple[Any, ...]) -> None:
        """Run one of the handler's child-job calls here, where the store is, and send the answer."""
        family = self._attempt.family
        answer: tuple[Any, ...]
        try:
            if family is None or name not in _FAMILY_CALLS:
                raise ConfigurationError("this job may not submit child jobs")
            answer = ("answer", call, True, getattr(family, name)(*args))
        except ParentStopping as exc:
            answer = ("answer", call, False, ("ParentStopping", exc.job_id, exc.status, exc.reason))
        except AndonError as exc:
            answer = ("answer", call, False, (type(exc).__name__, str(exc)))
        except Exception as exc:  # a store error: the handler sees it, as in a thread
            answer = ("answer", call, False, ("StorageError", f"{type(exc).__name__}: {exc}"))
        with self._lock, contextlib.suppress(OSError, ValueError):
            conn.send(answer)

    def _done_outcome(self, kind: str, payload: Any) -> Outcome:  # Any: a pickled message part
        token = self._attempt.token
        if kind == "succeeded":
            return succeeded(payload, token.clock)
        if kind == "stopped":
            return stopped(token, StopMethod(payload))
        return error_outcome(ErrorInfo(*payload), token)

    def deliver(self) -> None:
        token = self._attempt.token
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            with contextlib.suppress(OSError, ValueError):
                conn.send(("cancel", token.reason.value if token.reason else None, token.message))

    def vouched(self) -> None:
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            with contextlib.suppress(OSError, ValueError):
                conn.send(("vouch", _on_system_clock(self._attempt.token)))

    def apply(self, step: Step) -> bool:
        if step not in (Step.TERMINATE, Step.KILL):
            return False
        signum = signal.SIGTERM if step is Step.TERMINATE else signal.SIGKILL
        with self._lock:
            self._signalled = StopMethod.TERMINATED if step is Step.TERMINATE else StopMethod.KILLED
            if self._pid is None:
                # Still starting: run() sends it as soon as the process exists.
                self._pending_signal = signum
                return True
            if self._conn is None:
                return False  # already over
            groups = [self._pid] if step is Step.TERMINATE else [self._pid, *self._child_pids]
        for group in groups:
            _signal_group(group, signum)
        return True


def _on_system_clock(token: CancelToken) -> float:
    """The token's vouch as a time of the machine's monotonic clock, the child's clock.

    The same number with the system clock (``CLOCK_MONOTONIC`` is one clock for the
    machine, so a message's delay does not move it); on a test's manual clock, the moment
    the same number of seconds from now falls.
    """
    until, clock = token.vouched_until, token.clock
    if clock is SYSTEM_CLOCK or until == math.inf:
        return until
    return time.monotonic() + (until - clock.monotonic())


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of ``pid`` (also of a zombie), or ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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


_FAMILY_CALLS: Final = frozenset({"submit", "children", "jobs", "items", "me"})
_FAMILY_ERRORS: Final[Mapping[str, type[AndonError]]] = {
    name: _errors.UsageError if issubclass(cls, _errors.UsageError) else AndonError
    for name, cls in vars(_errors).items()
    if isinstance(cls, type) and issubclass(cls, AndonError)
} | {"StorageError": _errors.StorageError}
"""How an error of a child-job call is raised in the job process: its message, as the
nearest class that can be made from a message alone."""


@final
class _PipeFamily:
    """The job process's end of :class:`~andon._family.Family`: each call goes to the worker
    through the pipe and waits for its answer (read by the ``andon-parent-pipe`` thread)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, concurrent.futures.Future[Any]] = {}

    def answered(self, call: int, ok: bool, value: Any) -> None:  # Any: a pickled answer
        with self._lock:
            future = self._waiting.pop(call, None)
        if future is None:
            return
        if ok:
            future.set_result(value)
        elif value[0] == "ParentStopping":
            future.set_exception(ParentStopping(value[1], value[2], value[3]))
        else:
            future.set_exception(_FAMILY_ERRORS.get(value[0], AndonError)(value[1]))

    def _call(self, name: str, *args: Any) -> Any:  # Any: the answer of the worker's Family
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._next += 1
            call = self._next
            self._waiting[call] = future
        self._send(("family", call, name, args))
        return future.result()  # the worker answers every call; if it dies, so does this process

    def submit(
        self,
        kind: str,
        params_list: Sequence[Mapping[str, Any]],
        timeout: float | bool | None,
        priority: int,
        detached: bool,
        fail_fast: bool,
        key: str | None = None,
        on_conflict: str = "skip",
        due: Due = NOW,
    ) -> list[Job]:
        args = (kind, list(params_list), timeout, priority, detached, fail_fast, key, on_conflict, due)
        jobs: list[Job] = self._call("submit", *args)
        return jobs

    def children(self) -> list[Job]:
        jobs: list[Job] = self._call("children")
        return jobs

    def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        jobs: list[Job] = self._call("jobs", list(job_ids))
        return jobs

    def items(self, job_id: str) -> list[ResultItem]:
        items: list[ResultItem] = self._call("items", job_id)
        return items

    def me(self) -> Job:
        job: Job = self._call("me")
        return job


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

    def checkpoint(self, at: float, encoded: str) -> None:
        self._send(("checkpoint", at, encoded))


def _child_main(
    conn: Connection,
    handler: Callable[..., Any],
    job_id: str,
    kind: str,
    attempt: int,
    params: dict[str, Any],  # Any: JSON params
    child_grace_s: float,
    limits: Limits | None = None,
    resumed: Any = None,  # Any: the JSON state of the checkpoint the attempt resumes from
) -> None:
    os.setpgid(0, 0)
    set_parent_death_signal()
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    token = CancelToken()
    family = _PipeFamily(send)
    threading.Thread(target=_read_parent, args=(conn, token, family), name="andon-parent-pipe", daemon=True).start()
    signal.signal(signal.SIGTERM, _raise_terminated)
    ctx = Context(
        job_id=job_id,
        kind=kind,
        attempt=attempt,
        params=params,
        token=token,
        sink=_PipeSink(send),
        child_grace_s=child_grace_s,
        resumed=resumed,
        family=family,
        # Once, at its first cancel point: from then on a stop gives it the grace period.
        on_listen=lambda: send(("listening",)),
    )
    done: tuple[str, Any]
    try:
        if limits is not None:
            _apply_limits(limits, child_grace_s)
        done = ("succeeded", handler(ctx, **params))
    except BaseException as exc:
        method = stop_method_of(exc, token)
        if method is not None:
            done = ("stopped", method.value)
        else:
            done = ("failed", _limit_error(exc, limits) or _exit_error(exc) or _error(exc))
    try:
        ctx._close()
        try:
            send(("done", done[0], done[1], token.acknowledged_at))
        except OSError:
            raise
        except Exception as exc:  # e.g. an unpicklable result
            send(("done", "failed", _error(exc), token.acknowledged_at))
    except (Terminated, OSError):
        # The worker is gone (a broken pipe; its reader thread is killing this group now) or
        # stopped this process while it reported: nobody is left to read a traceback.
        os._exit(1)
    # No conn.close(): the reader thread would take the closed pipe for a dead worker.
    os._exit(0)


def _error(exc: BaseException) -> tuple[str, str, str]:
    return (type(exc).__qualname__, str(exc) or repr(exc), "".join(traceback.format_exception(exc)))


class LimitsNotApplied(Exception):
    """``setrlimit`` refused a limit (e.g. above the worker's own hard limit)."""


def _apply_limits(limits: Limits, grace_s: float) -> None:
    """Set the kind's limits on this (child) process, just before the handler runs."""
    wanted: list[tuple[str, int, int, int]] = []
    if limits.memory_mib is not None:
        size = limits.memory_mib * 1024 * 1024
        wanted.append(("memory", resource.RLIMIT_AS, size, size))
    if limits.cpu_s is not None:
        # The soft limit raises _CpuLimitExceeded (cleanups run); the hard one, a grace
        # period later, is the kernel's SIGKILL for a handler stuck in C code.
        signal.signal(signal.SIGXCPU, _raise_cpu_limit(limits.cpu_s))
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(used.ru_utime + used.ru_stime)  # a forked child starts near 0
        soft = spent + limits.cpu_s
        wanted.append(("CPU", resource.RLIMIT_CPU, soft, soft + max(1, int(grace_s + 0.999))))
    if limits.open_files is not None:
        wanted.append(("open files", resource.RLIMIT_NOFILE, limits.open_files, limits.open_files))
    for what, which, soft, hard in wanted:
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as exc:
            raise LimitsNotApplied(f"cannot set the {what} limit ({limits.describe()}): {exc}") from None


def _raise_cpu_limit(cpu_s: int) -> Callable[[int, FrameType | None], None]:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        # The kernel repeats SIGXCPU every second past the soft limit: raise only once, so
        # the cleanups that run next are not interrupted in turn.
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        raise _CpuLimitExceeded(f"the handler exceeded its CPU limit of {cpu_s} s")

    return handle


def _limit_error(exc: BaseException, limits: Limits | None) -> tuple[str, str, str] | None:
    """A failure caused by one of the kind's limits, described as such (else ``None``)."""
    tb = "".join(traceback.format_exception(exc))
    if isinstance(exc, _CpuLimitExceeded):
        return ("CpuLimitExceeded", str(exc), tb)
    if limits is None:
        return None
    if isinstance(exc, MemoryError) and limits.memory_mib is not None:
        detail = f": {exc}" if str(exc) else ""
        message = f"the handler exceeded its memory limit of {limits.memory_mib} MiB (MemoryError{detail})"
        return ("MemoryLimitExceeded", message, tb)
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE and limits.open_files is not None:
        message = f"the handler exceeded its limit of {limits.open_files} open files ({exc})"
        return ("OpenFilesLimitExceeded", message, tb)
    return None


def _exit_error(exc: BaseException) -> tuple[str, str, str] | None:
    """``sys.exit()`` in a handler: say so, with the code (a handler should return or raise)."""
    if not isinstance(exc, SystemExit):
        return None
    message = f"the handler called sys.exit({exc.code!r}); a handler should return or raise"
    return ("SystemExit", message, "".join(traceback.format_exception(exc)))


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated(None, "stopped by SIGTERM")


def _read_parent(conn: Connection, token: CancelToken, family: _PipeFamily) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            # The worker is gone: nobody can record what this job does any more, so stop
            # the whole group now rather than run on as an orphan.
            os.killpg(0, signal.SIGKILL)
            return
        if message[0] == "vouch":
            token.vouched_until = message[1]  # on CLOCK_MONOTONIC, one clock for the machine
        elif message[0] == "cancel":
            reason = CancelReason(message[1]) if message[1] else CancelReason.USER
            token.request(reason, message[2])
        elif message[0] == "answer":
            family.answered(message[1], message[2], message[3])
