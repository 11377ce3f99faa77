"""The context object every handler receives first: cancel points, progress, results, cleanup."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import json
import math
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol, TypeVar

from andon._cancel import Cancelled, CancelReason, CancelToken
from andon._children import ChildGroup
from andon._errors import CommandFailed, ConfigurationError, ParentStopping, ResultTooLarge, WaitTimeout
from andon._family import FamilyCalls, due_time
from andon._jobs import Job, JobStatus, ResultItem
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

    A handler that has reached a cancel point or read :attr:`cancelled` in this attempt has
    shown that it *listens*: a stop gives it the grace period to end by itself. One that has
    not (``emit``, ``progress`` and ``checkpoint`` cannot tell it of a stop, so they do not
    count) cannot stop by itself, and is stopped by force at once (``andon._stop.first_grace``).

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
        family: FamilyCalls | None = None,
        on_listen: Callable[[], object] | None = None,
    ) -> None:
        self.job_id = job_id
        self.kind = kind
        self.attempt = attempt
        self.params = params
        self._token = token
        self._clock = token.clock
        self._sink = sink
        self._resumed = resumed
        self._family = family
        self._start_noted = False
        self._listening = False
        self._on_listen = on_listen
        self._cleanups: list[Callable[[], object]] = []
        self._children = ChildGroup(child_grace_s, sink.child_started)
        self._unsubscribe = token.on_request(lambda _reason: self._children.stop())

    # -- cancellation ---------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """``True`` once a cancel was requested. Cheap; not a cancel point (it never raises),
        but reading it shows the handler listens (it gets the grace period)."""
        if not self._listening:
            self._listen()
        if self._token.requested:
            self._token.acknowledge()
            return True
        return False

    def check(self) -> None:
        """Cancel point: raise :class:`Cancelled` if the job was asked to stop, or if its
        worker can no longer vouch that it still holds the job (reason ``lease_lost``).

        Every other cancel point starts with it, so it also notes that the handler listens."""
        if not self._listening:
            self._listen()
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

    def _listen(self) -> None:
        """The first cancel point (or read of :attr:`cancelled`) of this attempt: say so, once."""
        self._listening = True
        self._token.listen()
        if self._on_listen is not None:
            self._on_listen()

    async def sleep_async(self, seconds: float) -> None:
        """Checkpoint for async handlers: like :meth:`sleep` without blocking the loop."""
        self.check()
        await asyncio.sleep(seconds)
        self.check()

    # -- child jobs ------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        *,
        timeout: float | bool | None = True,
        priority: int = 0,
        detached: bool = False,
        fail_fast: bool = True,
        key: str | None = None,
        on_conflict: str = "skip",
        run_at: datetime.datetime | float | None = None,
        delay: float | None = None,
    ) -> Job:
        """Queue a child job of this one; a cancel point.

        The child belongs to this job's tree: a cancel (timeout, force-fail, delete) of this
        job, or of any job above it, withdraws or stops it too, and this job is recorded
        ``cancelled`` only once its children have stopped. If this job ends (returns or
        raises) while the child is still active, the child is cancelled (reason
        ``parent_ended``) unless ``detached``. With ``fail_fast`` (the default) the child's
        failure (no retry left) fails this job, and its other children are cancelled with
        it; without, the failure is only recorded (:meth:`wait_children` returns it).

        ``timeout``: seconds, ``None`` for none, ``True`` for the kind's own. ``key`` and
        ``on_conflict`` as for ``Client.submit``: while a job of ``kind`` with that key is
        active, ``skip`` answers it (not a child of this job), ``queue`` lets one wait
        behind it, ``supersede`` stops it. ``run_at`` / ``delay`` schedule it, as for ``Client.submit``.

        Raises:
            Cancelled: this job is being stopped (no child was created).
            UnknownKind, InvalidParams: the kind or params do not fit (nothing is created).
        """
        family = self._family_calls()
        due = due_time(run_at, delay)
        self.check()
        one = [dict(params or {})]
        return self._submitting(
            lambda: family.submit(kind, one, timeout, priority, detached, fail_fast, key, on_conflict, due)
        )[0]

    def submit_many(
        self,
        kind: str,
        params_list: Iterable[Mapping[str, Any]],  # Any: JSON values
        *,
        timeout: float | bool | None = True,
        priority: int = 0,
        detached: bool = False,
        fail_fast: bool = True,
        run_at: datetime.datetime | float | None = None,
        delay: float | None = None,
    ) -> list[Job]:
        """Queue many child jobs of one kind in one transaction (all or none); see :meth:`submit`."""
        family = self._family_calls()
        due = due_time(run_at, delay)
        self.check()
        many = [dict(p) for p in params_list]
        return self._submitting(
            lambda: family.submit(kind, many, timeout, priority, detached, fail_fast, None, "skip", due)
        )

    def _submitting(self, submit: Callable[[], list[Job]]) -> list[Job]:
        try:
            return submit()
        except ParentStopping as exc:
            # Its stop committed before the children could be: this attempt stops now, for
            # the reason the store gave (the notice of the stop is on its way too).
            reason = CancelReason(exc.reason) if exc.reason in set(CancelReason) else CancelReason.USER
            self._token.request(reason, str(exc))
            self._token.raise_if_requested()
            raise  # unreachable: the token is requested

    def children(self) -> list[Job]:
        """This job's children as stored now, oldest first (those earlier attempts submitted too)."""
        return self._family_calls().children()

    def items_of(self, child: Job | str) -> list[ResultItem]:
        """The items a child emitted. Raises :class:`~andon.JobNotFound` for a job that is not a child."""
        return self._family_calls().items(child if isinstance(child, str) else child.id)

    def wait_children(self, children: Iterable[Job | str] | None = None, *, timeout: float | None = None) -> list[Job]:
        """Cancel point: block until these children (default: all of them) have ended.

        Returns them as they ended (status, result, error), in the order given. A cancel of
        this job interrupts the wait (and stops the children, through the tree). A failed
        child submitted with ``fail_fast`` stops this job: the wait raises
        :class:`Cancelled` (reason ``child_failed``).

        Raises:
            WaitTimeout: ``timeout`` seconds passed with a child still active.
        """
        family = self._family_calls()
        ids = None if children is None else [c if isinstance(c, str) else c.id for c in children]
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        pause = 0.005
        while True:
            self.check()
            jobs = family.children() if ids is None else family.jobs(ids)
            active = next((job for job in jobs if not job.is_terminal), None)
            if active is None:
                self._stop_if_stopped_with(jobs, family)
                return jobs
            left = None if deadline is None else deadline - self._clock.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(active.id, active.status.value, timeout or 0.0)
            # The store is asked again after a short, growing pause; a cancel ends the pause.
            self._token.wait(self._token.remaining(pause if left is None else min(pause, left)))
            pause = min(pause * 2, 0.2)

    async def wait_children_async(self, children: Iterable[Job | str] | None = None) -> list[Job]:
        """:meth:`wait_children` for async handlers: the loop is never blocked (bound it
        with ``asyncio.timeout``)."""
        family = self._family_calls()
        ids = None if children is None else [c if isinstance(c, str) else c.id for c in children]
        pause = 0.005
        while True:
            self.check()
            jobs = await asyncio.to_thread(family.children if ids is None else lambda: family.jobs(ids))
            if all(job.is_terminal for job in jobs):
                await asyncio.to_thread(self._stop_if_stopped_with, jobs, family)
                return jobs
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    def _stop_if_stopped_with(self, children: list[Job], family: FamilyCalls) -> None:
        """Children that ended because this job's stop reached them: the stop has committed
        (its notice may still be on its way), so the wait ends in :class:`Cancelled`, not as
        if the children had finished."""
        if not any(c.cancel is not None and c.cancel.reason is CancelReason.PARENT_CANCELLED for c in children):
            return
        me = family.me()
        if me.status is JobStatus.CANCELLING and me.cancel is not None:
            self._token.request(me.cancel.reason, me.cancel.message)
            self._token.raise_if_requested()

    async def submit_async(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        **options: Any,  # Any: the keyword arguments of submit
    ) -> Job:
        """:meth:`submit` for async handlers: the store is written from a thread."""
        self.check()
        return await asyncio.to_thread(self.submit, kind, params, **options)

    def _family_calls(self) -> FamilyCalls:
        if self._family is None:
            raise ConfigurationError("this context has no store to submit child jobs to (it runs outside a worker)")
        return self._family

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
