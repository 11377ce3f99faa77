"""Errors raised by andon.

Every error andon raises on purpose derives from :class:`AndonError`, grouped by who
has to react::

    AndonError
    ├── UsageError                 the caller did something andon cannot do
    │   ├── UnknownKind            no handler is registered under that kind
    │   ├── InvalidParams          params do not fit the kind's signature
    │   │   └── ParamsTooLarge     params over the size limit (HTTP 413)
    │   ├── ResultTooLarge         a result item or a job's result over the size limit
    │   ├── InvalidCursor          a page cursor no page gave (not a job id)
    │   ├── ItemsNotFlat           a job's items asked for as CSV are not all flat objects
    │   ├── InvalidKey             a job key or idempotency key that is empty, too long or not text
    │   ├── IdempotencyKeyReused   an idempotency key sent again with another request
    │   ├── InvalidSchedule        a schedule with a bad name, cron expression, interval or time zone
    │   ├── ScheduleExists         adding a schedule under a name already taken
    │   ├── ScheduleFromApp        removing a schedule the app declares (change the code instead)
    │   ├── InvalidTransition      the job is in a state that forbids the operation
    │   │   ├── JobFinished        e.g. cancelling a job that already succeeded
    │   │   └── JobPruned          e.g. retrying a job whose params were pruned
    │   └── LifecycleError         a worker/store used before open or after close
    ├── JobNotFound                no job has that id (or it is another user's)
    ├── ScheduleNotFound           no schedule has that name
    ├── NotAllowed                 the caller's role does not allow the operation
    ├── WaitTimeout                a wait_* call gave up (also a TimeoutError)
    ├── CommandFailed              a ctx.run child exited non-zero (also a CalledProcessError)
    ├── ConfigurationError         a bad database URL, app reference or setting
    └── StorageError               the store could not do what was asked
        ├── StorageUnavailable     the database cannot be reached or opened
        └── StorageBusy            another process held the database too long; retry

The signal that tells a handler to stop, :class:`andon.Cancelled`, is deliberately
*not* here: it derives from ``BaseException`` (see ``_cancel.py``).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from typing import Any, final

__all__ = [
    "AndonError",
    "CommandFailed",
    "ConfigurationError",
    "IdempotencyKeyReused",
    "InvalidCursor",
    "InvalidKey",
    "InvalidParams",
    "InvalidSchedule",
    "InvalidTransition",
    "ItemsNotFlat",
    "JobFinished",
    "JobNotFound",
    "JobPruned",
    "LifecycleError",
    "NotAllowed",
    "ParamsTooLarge",
    "ParentStopping",
    "ResultTooLarge",
    "ScheduleExists",
    "ScheduleFromApp",
    "ScheduleNotFound",
    "StorageBusy",
    "StorageError",
    "StorageUnavailable",
    "UnknownKind",
    "UsageError",
    "WaitTimeout",
]


class AndonError(Exception):
    """Root of every error andon raises on purpose."""


class UsageError(AndonError):
    """The caller asked for something andon cannot do; fix the call."""


@final
class UnknownKind(UsageError):
    """No handler is registered for ``kind``."""

    def __init__(self, kind: str, known: list[str] | None = None) -> None:
        self.kind = kind
        hint = f" (registered kinds: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown job kind {kind!r}{hint}")


class InvalidParams(UsageError):
    """The params given for a job do not match its handler's signature."""

    def __init__(self, kind: str, problems: list[str]) -> None:
        self.kind = kind
        self.problems = problems
        super().__init__(f"invalid params for {kind!r}: " + "; ".join(problems))


@final
class ParamsTooLarge(InvalidParams):
    """A job's params take more bytes, as JSON, than the limit; no job is created."""

    def __init__(self, kind: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(kind, [f"params take {size} bytes, the limit is {limit}"])


@final
class ResultTooLarge(UsageError, ValueError):
    """A result item, or the result a handler returned, takes more bytes as JSON than the limit.

    ``ctx.emit`` raises it in the handler (nothing of the item is stored); a returned
    result that is too large fails the job with it (no result is stored). It is also a
    ``ValueError``, which ``ctx.emit`` raised for this before.
    """

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} takes {size} bytes as JSON, the limit is {limit}: store large data elsewhere"
            " (a file, an object store) and emit or return a reference to it"
        )


@final
class InvalidCursor(UsageError):
    """A page cursor that no page gave: a listing's cursor is the id of a job.

    Refused rather than compared as text, which answered an empty page or the whole history
    from the top as if it were a position. ``problems`` names the parameter (HTTP 422).
    """

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        self.problems = [f"cursor: {cursor[:100]!r} is not a page cursor (a job id); pass a page's next_cursor"]
        super().__init__(self.problems[0])


@final
class ItemsNotFlat(UsageError):
    """A job's items were asked for as CSV, and one of them is not a JSON object whose values
    are all scalars (strings, numbers, booleans, null): it has no row to go in."""

    def __init__(self, job_id: str, seq: int, problem: str) -> None:
        self.job_id = job_id
        self.seq = seq
        super().__init__(
            f"job {job_id}'s items cannot be a CSV: item {seq} is not a flat object ({problem});"
            " download them as JSON Lines instead"
        )


@final
class InvalidKey(UsageError):
    """A job key (``submit(key=...)``) or an ``Idempotency-Key`` that andon cannot store: empty,
    longer than :data:`andon._jobs.MAX_KEY_CHARS`, or holding control characters. Nothing is
    created. ``problems`` names the field (HTTP 422)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problems = [f"{field}: {problem}"]
        super().__init__(self.problems[0])


@final
class IdempotencyKeyReused(UsageError):
    """An idempotency key was sent again, within its window, with a request that differs
    from the first one's: nothing is created. Send a new key for a new request."""

    def __init__(self, key: str, job_id: str) -> None:
        self.key = key
        self.job_id = job_id
        super().__init__(
            f"idempotency key {key[:100]!r} was first used for another request (which made or found job"
            f" {job_id}); use a new key for a different request"
        )


class InvalidTransition(UsageError):
    """The job's current state does not allow the requested operation."""

    def __init__(self, job_id: str, state: str, operation: str, message: str | None = None) -> None:
        self.job_id = job_id
        self.state = state
        self.operation = operation
        super().__init__(message or f"cannot {operation} job {job_id}: it is {state}")


@final
class JobFinished(InvalidTransition):
    """The job already reached a terminal state, so it cannot be cancelled or failed."""

    def __init__(self, job_id: str, state: str, operation: str) -> None:
        super().__init__(
            job_id,
            state,
            operation,
            f"cannot {operation} job {job_id}: it already finished as {state}",
        )


@final
class JobPruned(InvalidTransition):
    """The job's history was pruned (``andon prune``): its tombstone is left, but not the
    params, items or checkpoint the operation needs."""

    def __init__(self, job_id: str, state: str, operation: str, pruned_at: float) -> None:
        self.pruned_at = pruned_at
        super().__init__(
            job_id,
            state,
            operation,
            f"cannot {operation} job {job_id}: its params, results and history were pruned"
            " (only its tombstone is kept)",
        )


@final
class InvalidSchedule(UsageError):
    """A schedule's name, cron expression, interval, time zone or policy is not usable."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"schedule {name!r}: {problem}")


@final
class ScheduleExists(UsageError):
    """A schedule with this name exists already (remove it first, or choose another name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a schedule named {name!r} exists already; remove it first or choose another name")


@final
class ScheduleFromApp(UsageError):
    """The schedule is declared in the app's code, so only a change of the code removes it."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"schedule {name!r} is declared in the app (@app.periodic): remove it from the code,"
            " or pause it to stop its ticks now"
        )


@final
class ScheduleNotFound(AndonError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}")


@final
class LifecycleError(UsageError):
    """An object with an open/close lifecycle was used in the wrong phase."""


@final
class JobNotFound(AndonError):
    """No job has this id (it never existed, or it was deleted)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


@final
class NotAllowed(AndonError):
    """The caller's role does not allow this operation (it needs ``admin``)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(f"only an admin may {operation}")


@final
class ConfigurationError(AndonError):
    """A setting, database URL or app reference is wrong."""


class StorageError(AndonError):
    """The store failed to carry out an operation."""


@final
class StorageUnavailable(StorageError):
    """The database could not be opened or reached."""


@final
class StorageBusy(StorageError):
    """Another process held the database's write lock for all of the store's busy timeout.

    Nothing of the operation was done, so it is safe to try again. A process stopped while
    it holds the lock (Ctrl-Z on a worker) or a very long transaction causes it.
    """

    def __init__(self, database: str, timeout_s: float) -> None:
        self.database = database
        self.timeout_s = timeout_s
        super().__init__(
            f"the database {database!r} is busy: another process has held it locked for over {timeout_s:g} s"
            " (a stopped or stuck worker?); nothing was changed, try again"
        )


@final
class WaitTimeout(AndonError, TimeoutError):
    """A ``wait_*`` call gave up before the job reached the awaited state."""

    def __init__(self, job_id: str, state: str, timeout: float) -> None:
        self.job_id = job_id
        self.state = state
        super().__init__(f"job {job_id} is still {state} after {timeout:g} s")


_COMMAND_CHARS = 200
_STDERR_TAIL_CHARS = 1000
_STDERR_TAIL_LINES = 10


@final
class CommandFailed(AndonError, subprocess.CalledProcessError):
    """A child process that ``ctx.run`` started exited with a non-zero code (or a signal).

    It is a :class:`subprocess.CalledProcessError` too, so ``returncode``, ``cmd``,
    ``output``/``stdout`` and ``stderr`` are there, and code that catches that still works.
    Unlike it, the message names the command, the exit code and the tail of the child's
    stderr (when ``ctx.run`` captured it), so a job that fails with it says why. Pass
    ``check=False`` to ``ctx.run`` to get the result back instead.
    """

    def __init__(
        self,
        returncode: int,
        cmd: Any,  # Any: whatever args the command was started with, as subprocess takes them
        output: Any = None,  # Any: bytes, str or None, as subprocess captured them
        stderr: Any = None,
    ) -> None:
        super().__init__(returncode, cmd, output, stderr)

    def __str__(self) -> str:
        return f"command {_command_text(self.cmd)} {_exit_text(self.returncode)}{_stderr_tail(self.stderr)}"


def _command_text(cmd: Any) -> str:  # Any: as subprocess takes args
    if isinstance(cmd, str | bytes):
        text = cmd.decode(errors="replace") if isinstance(cmd, bytes) else cmd
    else:
        try:
            text = shlex.join(os.fsdecode(arg) if isinstance(arg, bytes) else str(arg) for arg in cmd)
        except TypeError:
            text = str(cmd)
    return f"`{text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 3] + '...'}`"


def _exit_text(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def _stderr_tail(stderr: Any) -> str:  # Any: bytes, str or None
    if stderr is None:
        return " (its stderr was not captured; pass capture_output=True to see it here)"
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
    lines = text.strip().splitlines()
    if not lines:
        return " and wrote nothing to stderr"
    tail = "\n".join(lines[-_STDERR_TAIL_LINES:])
    if len(tail) > _STDERR_TAIL_CHARS:
        tail = "..." + tail[-_STDERR_TAIL_CHARS:]
    elif len(lines) > _STDERR_TAIL_LINES:
        tail = "...\n" + tail
    return f"; the end of its stderr:\n{tail}"


class ParentStopping(AndonError):
    """A child was submitted from a job that is no longer running (its cancel, force-fail or
    timeout has committed, or its attempt lost the job): no child was created.

    ``ctx.submit`` turns it into :class:`~andon.Cancelled` in the handler: the parent's
    work is being stopped, and a child created now would outlive the cancel.
    """

    def __init__(self, job_id: str, status: str, reason: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(f"job {job_id} is {status}{why}: it may not submit children any more")
