"""The context object every handler receives first: cancel points, progress, results, cleanup."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import subprocess
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol, TypeVar

from andon._cancel import Cancelled, CancelToken
from andon._children import ChildGroup
from andon._errors import CommandFailed, ResultTooLarge
from andon._sizes import MAX_CHECKPOINT_BYTES, MAX_ITEM_BYTES, MAX_MESSAGE_CHARS, storable_text

__all__ = ["Context", "ContextSink", "checked_progress", "encode_output"]

T = TypeVar("T")


class ContextSink(Protocol):
    """Where a context sends what the handler produces (a buffer in the worker, or a pipe)."""

    def emit(self, at: float, encoded: str) -> None: ...

    def progress(self, done: float, total: float | None, message: str | None) -> None: ...

    def child_started(self, pid: int) -> None: ...

    def checkpoint(self, at: float, encoded: str) -> None: ...


class Context:
    """What a handler gets as its first argument.

    Cancel points - calls where the handler may observe a cancel and get :class:`Cancelled` -
    are :meth:`check`, :meth:`sleep`, :meth:`wait`, :meth:`run` and their async twins.
    :attr:`cancelled` only reads the flag. :meth:`emit` and :meth:`progress` are not
    cancel points: work finished before the stop is kept, even when reported late.

    One rule holds for all of them, ``emit`` and ``progress`` too: once the worker can no
    longer vouch that this attempt still holds the job (it could not renew the lease, or
    the process was paused past it), the call raises :class:`Cancelled` (reason
    ``lease_lost``) before doing anything: another worker may already run the job.
    """

    def __init__(
        self,
        *,
        job_id: str,
        kind: str,
        attempt: int,
        params: dict[str, Any],  # Any: the job's JSON params
        token: CancelToken,
        sink: ContextSink,
        child_grace_s: float,
        resumed: Any = None,  # Any: the JSON state of the checkpoint this attempt resumes from
    ) -> None:
        self.job_id = job_id
        self.kind = kind
        self.attempt = attempt
        self.params = params
        self._token = token
        self._clock = token.clock
        self._sink = sink
        self._resumed = resumed
        self._start_noted = False
        self._cleanups: list[Callable[[], object]] = []
        self._children = ChildGroup(child_grace_s, sink.child_started)
        self._unsubscribe = token.on_request(lambda _reason: self._children.stop())

    # -- cancellation ---------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """``True`` once a cancel was requested. Cheap; not a cancel point (it never raises)."""
        if self._token.requested:
            self._token.acknowledge()
            return True
        return False

    def check(self) -> None:
        """Cancel point: raise :class:`Cancelled` if the job was asked to stop, or if its
        worker can no longer vouch that it still holds the job (reason ``lease_lost``)."""
        if self._token.requested or self._clock.monotonic() >= self._token.vouched_until:
            self._token.raise_if_stopped()

    def sleep(self, seconds: float) -> None:
        """Cancel point: sleep, waking at once and raising :class:`Cancelled` on a cancel."""
        self.check()
        deadline = self._clock.monotonic() + max(0.0, seconds)
        while not self._token.wait(self._token.remaining(deadline - self._clock.monotonic())):
            self.check()  # woken by the end of the vouch, not by a cancel
            if self._clock.monotonic() >= deadline:
                return
        self._token.raise_if_requested()

    def wait(self, waitable: threading.Event | concurrent.futures.Future[T], timeout: float | None = None) -> Any:
        """Cancel point: wait for an event to be set or a future to finish, or for a cancel.

        Returns the future's result (or the event's flag). Raises :class:`Cancelled` on a
        cancel (a future is cancelled too), ``TimeoutError`` if ``timeout`` passes first.
        """
        self.check()
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        if isinstance(waitable, threading.Event):
            # An Event has no callback to hook, so wait in short slices; 2 ms keeps the
            # cancel latency of this cancel point far below what users notice.
            while not waitable.wait(0.002):
                self.check()
                if deadline is not None and self._clock.monotonic() >= deadline:
                    raise TimeoutError(f"the event was not set within {timeout} s")
            return True
        done = threading.Event()
        waitable.add_done_callback(lambda _f: done.set())
        unsubscribe = self._token.on_request(lambda _reason: done.set())
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - self._clock.monotonic())
                finished = done.wait(self._token.remaining(remaining))
                if finished or self._token.requested or (deadline is not None and self._clock.monotonic() >= deadline):
                    break
                self._token.raise_if_unvouched()
        except Cancelled:
            waitable.cancel()
            raise
        finally:
            unsubscribe()
        if self._token.requested:
            waitable.cancel()
            self._token.raise_if_requested()
        if not finished:
            raise TimeoutError(f"the future did not finish within {timeout} s")
        return waitable.result()

    async def sleep_async(self, seconds: float) -> None:
        """Checkpoint for async handlers: like :meth:`sleep` without blocking the loop."""
        self.check()
        await asyncio.sleep(seconds)
        self.check()

    # -- output ------------------------------------------------------------------

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress (only the latest report is stored). Not a cancel point.

        ``done`` and ``total`` are stored as floats (any int or float is accepted, however
        large); ``message`` is text of at most ``MAX_MESSAGE_CHARS`` characters.

        Raises:
            TypeError: ``done``/``total`` is not a number, or ``message`` not a string.
            ValueError: a number is NaN or infinite, or the message is too long.
        """
        self._token.raise_if_unvouched()
        self._sink.progress(*checked_progress(done, total, message))

    def emit(self, item: Any) -> None:  # Any: any JSON value
        """Store one partial result, in order. Cheap (written in batches); not a cancel point.

        Every item emitted before the job stops is kept, whichever way it stops.

        Raises:
            TypeError: the item is not JSON-serialisable.
            ValueError: the item holds NaN or Infinity, which JSON has no words for.
            ResultTooLarge: the item takes more than 1 MiB (``MAX_ITEM_BYTES``) as JSON;
                nothing of it is stored, and the job goes on unless the handler lets
                the error out.
        """
        self._token.raise_if_unvouched()
        encoded = encode_output(item, "a result item", MAX_ITEM_BYTES)
        self._sink.emit(self._clock.now(), encoded)

    def checkpoint(self, state: Any) -> None:  # Any: any JSON value
        """Store ``state`` as where this job stands, so that it can go on from there.

        The state is stored together with every item emitted before this call, in one
        transaction: a stored state is never ahead of or behind the stored items. An attempt
        that resumes (:attr:`resumed`, after ``andon resume``, a shutdown, a lost worker or
        lease, a pause, or a failure under ``Retry(resume=True)``) starts from the last one
        stored, and its items are numbered on from the items that came before it (those
        emitted after it are dropped: the resumed attempt does that work again). Cheap:
        written with the next batch of items. Not a cancel point; it stores also while a
        stop is under way (a cleanup may record where the work stopped).

        Raises:
            TypeError: the state is not JSON-serialisable.
            ValueError: the state holds NaN or Infinity.
            ResultTooLarge: the state takes more than 64 KiB (``MAX_CHECKPOINT_BYTES``) as
                JSON; the checkpoint before it stays the last one.
        """
        self._token.raise_if_unvouched()
        encoded = encode_output(state, "a checkpoint", MAX_CHECKPOINT_BYTES)
        self._sink.checkpoint(self._clock.now(), encoded)

    @property
    def resumed(self) -> Any:  # Any: the JSON state a checkpoint stored
        """The state of the checkpoint this attempt starts from, or ``None`` when it starts
        from scratch (a first attempt, a retry without ``Retry(resume=True)``, or a job that
        never stored one). Read it first thing, before emitting anything, and go on from there.

        Reading it also says the handler can go on from a checkpoint: on a fresh start the
        start itself is stored as one (state ``None``), so an attempt interrupted before its
        first ``ctx.checkpoint`` goes on from scratch without keeping a second copy of what
        it emitted before the interruption.
        """
        if self._resumed is None and not self._start_noted:
            self._start_noted = True
            with contextlib.suppress(Cancelled):  # read after the job ended: nothing to store
                self._sink.checkpoint(self._clock.now(), "null")
        return self._resumed

    # -- resources ---------------------------------------------------------------

    def on_cleanup(self, function: Callable[[], object]) -> None:
        """Call ``function`` when the job ends, whichever way; cleanups run in reverse order."""
        self._cleanups.append(function)

    def enter(self, manager: AbstractContextManager[T]) -> T:
        """Enter a context manager now and exit it when the job ends (in reverse order)."""
        value = manager.__enter__()
        self._cleanups.append(lambda: manager.__exit__(None, None, None))
        return value

    def popen(self, args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # Any: as Popen
        """Start a child process in its own process group, stopped with the job.

        On a cancel the whole group gets SIGTERM at once and SIGKILL after the grace period;
        when the job ends, whatever is left is killed and reaped. The child also dies if the
        thread that started it exits (``PR_SET_PDEATHSIG``), so call it from the handler's
        own thread, not from a short-lived helper thread.
        """
        self.check()
        return self._children.popen(args, **kwargs)

    def run(
        self, args: Any, *, check: bool = True, timeout: float | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:  # Any: as subprocess.run
        """Cancel point: run a child process to completion, like :func:`subprocess.run`.

        A cancel stops the child (SIGTERM, then SIGKILL) and raises :class:`Cancelled`.

        Unlike :func:`subprocess.run`, ``check`` is on by default: a failure must not read
        as success, so a job whose command failed fails too, unless the handler says it
        will look at the exit code itself.

        Args:
            args: the command, as :func:`subprocess.run` takes it.
            check: raise :class:`andon.CommandFailed` if the child exits with a non-zero
                code or is killed by a signal; pass ``False`` to get the result back and
                read ``returncode`` yourself.
            timeout: seconds to wait for the child; past it the child is killed and
                ``subprocess.TimeoutExpired`` raised.
            kwargs: as :func:`subprocess.run` (``capture_output``, ``text``, ``input``, ...).

        Returns:
            The finished child's ``subprocess.CompletedProcess``.

        Raises:
            Cancelled: the job was asked to stop; the child was stopped.
            CommandFailed: ``check`` is on and the child did not exit with 0. Its message
                names the command, the exit code and the end of the child's stderr when
                it was captured (``capture_output=True`` or ``stderr=subprocess.PIPE``).
            subprocess.TimeoutExpired: ``timeout`` passed first.
        """
        if not isinstance(check, bool):
            raise TypeError(f"ctx.run's check must be True or False, not {check!r}")
        if kwargs.get("capture_output") and ("stdout" in kwargs or "stderr" in kwargs):
            raise ValueError("ctx.run takes capture_output=True or stdout/stderr, not both")
        if "input" in kwargs and kwargs["input"] is not None:
            kwargs["stdin"] = subprocess.PIPE
        stdin_data = kwargs.pop("input", None)
        if kwargs.pop("capture_output", False):
            kwargs["stdout"] = subprocess.PIPE
            kwargs["stderr"] = subprocess.PIPE
        child = self.popen(args, **kwargs)
        try:
            stdout, stderr = child.communicate(stdin_data, timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
        self.check()
        if check and child.returncode != 0:
            raise CommandFailed(child.returncode, child.args, stdout, stderr)
        return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)

    # -- for runtimes ------------------------------------------------------------

    def _close(self) -> list[BaseException]:
        """Run cleanups in reverse order and reap child processes; returns cleanup errors."""
        errors: list[BaseException] = []
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Cancelled:
                continue
            except Exception as exc:
                errors.append(exc)
        self._unsubscribe()
        with contextlib.suppress(Exception):
            self._children.close()
        return errors

    def _kill_children(self) -> None:
        self._children.kill()


def checked_progress(done: object, total: object, message: object) -> tuple[float, float | None, str | None]:
    """A progress report as the store can keep it, or the handler's own error saying why not.

    Checked here, in the handler's call, so a value no store can represent (an int past
    64 bits, NaN, a lone surrogate) fails that one call instead of the worker's batch write.
    """
    return (
        _progress_number(done, "done"),
        None if total is None else _progress_number(total, "total"),
        None if message is None else _progress_message(message),
    )


def _progress_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"progress {name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int too large even for a float
        raise ValueError(f"progress {name} is too large to store") from None
    if not math.isfinite(number):
        raise ValueError(f"progress {name} must be a finite number, not {number}")
    return number


def _progress_message(message: object) -> str:
    if not isinstance(message, str):
        raise TypeError(f"a progress message must be a string, not {type(message).__name__}")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValueError(f"a progress message takes at most {MAX_MESSAGE_CHARS} characters, not {len(message)}")
    return storable_text(message)


# One encoder for every item: json.dumps with options builds a new encoder per call.
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode_output(value: Any, what: str, limit: int) -> str:  # Any: a JSON value
    """``value`` as compact JSON text, refused if it is not JSON or longer than ``limit``.

    Raises:
        TypeError: ``value`` holds something JSON cannot carry (a set, an object...).
        ValueError: it holds NaN or Infinity (readers of the API could not parse them).
        ResultTooLarge: the text is longer than ``limit``.
    """
    try:
        encoded = _COMPACT_JSON.encode(value)
    except ValueError:
        raise ValueError(f"{what} must be JSON: NaN and Infinity are not JSON numbers") from None
    except TypeError as exc:
        raise TypeError(f"{what} must be JSON ({exc})") from None
    if len(encoded) > limit:
        raise ResultTooLarge(what, len(encoded), limit)
    return encoded
