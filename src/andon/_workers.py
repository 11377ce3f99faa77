"""The workers registry: who runs jobs, where, and whether they are still there.

Every :class:`~andon.Worker` writes a row of its own to the store as it starts
(:class:`WorkerRegistration`), refreshes it with each renewal of its leases (the heartbeat
rides in the renewal's transaction), and marks it stopped when it stops cleanly. The jobs a
worker runs now are read from the jobs it holds (never a copy that could go stale).

What a row means is decided here from facts only (:func:`worker_status`):

==========  ===========================================================================
status      when
==========  ===========================================================================
alive       its last heartbeat is fresh (less than two thirds of its lease ago)
silent      no heartbeat for two thirds of its lease or more: it fences its own jobs by
            then, and past its lease any worker may recover them (``silent_s`` says how
            long)
stopped     it stopped cleanly (``Worker.stop``, SIGTERM of ``andon worker``)
dead        its process was found gone (see below); its jobs were recovered then
==========  ===========================================================================

**Found gone.** A worker on this machine whose process has ended cannot renew its leases,
but nobody needs to wait for them to run out: a :class:`Lookout` (every worker runs one,
and so does an API server without a worker of its own) looks every half second at the
rows of workers of this machine (same host name, same boot of the kernel, same pid
namespace) and checks each one's process (``/proc/<pid>/stat``: gone, a zombie, or a
process started at another time than the worker's, i.e. a reused pid). One that is gone
is marked ``dead`` and its jobs are recovered in the same transaction, exactly as an
expired lease recovers them (retried or failed by each job's policy, ``worker_lost`` in
the history, naming the process). Two lookouts that find the same worker race on the row:
only the transaction that still finds it unended marks it and recovers its jobs. Workers
on other machines are never judged this way (their pids mean nothing here); their leases
decide, as before.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

from andon._clock import SYSTEM_CLOCK, Clock
from andon._errors import AndonError, LifecycleError

if TYPE_CHECKING:
    from andon._jobs import Job
    from andon._storage._port import Store

__all__ = [
    "FENCE_SHARE",
    "LOOKOUT_EVERY_S",
    "WORKER_ROWS_KEPT_S",
    "Lookout",
    "Machine",
    "ProcessId",
    "WorkerEnd",
    "WorkerInfo",
    "WorkerRegistration",
    "WorkerStatus",
    "process_gone",
    "process_id",
    "this_machine",
    "this_process",
    "worker_status",
]

log = logging.getLogger("andon.workers")

LOOKOUT_EVERY_S: Final = 0.5
"""How often a lookout looks for workers of this machine whose process is gone."""
WORKER_ROWS_KEPT_S: Final = 24 * 3600.0
"""How long the row of a worker that stopped or died (or went silent) stays for the view;
older ones are pruned when a worker registers."""
FENCE_SHARE: Final = 2 / 3
"""A worker is ``silent`` once this share of its lease passed without a heartbeat: the point
at which it fences its own jobs (``andon._worker``)."""
UNKNOWN: Final = "unknown"
"""A boot id or pid namespace that could not be read: such a process is never judged by pid."""


class WorkerStatus(enum.StrEnum):
    """What a worker's row says of it now (see the table in ``andon._workers``)."""

    ALIVE = "alive"
    SILENT = "silent"
    STOPPED = "stopped"
    DEAD = "dead"


class WorkerEnd(enum.StrEnum):
    """How a worker's row was ended (stored)."""

    STOPPED = "stopped"
    """It stopped cleanly."""
    DEAD = "dead"
    """Its process was found gone by a lookout."""


@dataclass(frozen=True, slots=True)
class Machine:
    """Where processes can see one another's pids: a host, one boot of it, one pid namespace."""

    host: str
    boot_id: str
    pid_ns: str

    @property
    def is_known(self) -> bool:
        """Whether pids of this machine can be judged at all (Linux ``/proc`` readable)."""
        return UNKNOWN not in (self.boot_id, self.pid_ns)


@dataclass(frozen=True, slots=True)
class ProcessId:
    """One process, told apart from a later one that reuses its pid."""

    machine: Machine
    pid: int
    start: int | None
    """When it started, in clock ticks after boot (``/proc/<pid>/stat``); ``None``: unknown."""


@dataclass(frozen=True, slots=True)
class WorkerRegistration:
    """What a worker writes about itself as it starts (and upserts with each heartbeat)."""

    id: str
    process: ProcessId
    version: str
    kinds: tuple[str, ...]
    slots: int
    lease_s: float


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker's row with what it means now and the jobs it holds."""

    id: str
    host: str
    pid: int
    version: str
    kinds: tuple[str, ...]
    slots: int
    lease_s: float
    started_at: float
    heartbeat_at: float
    """The wall-clock time of its last heartbeat (registration or lease renewal)."""
    heartbeat_age_s: float
    """Seconds since that heartbeat, on the clock leases are judged on."""
    stopped_at: float | None
    """When it stopped cleanly or was found dead."""
    end_message: str | None
    """Why it was found dead (which process was gone), for a dead worker."""
    status: WorkerStatus
    running: int
    """Jobs it holds now (running or cancelling), whoever owns them."""
    job_ids: tuple[str, ...]
    """Those jobs' ids (a ``user`` caller sees only its own)."""

    @property
    def is_alive(self) -> bool:
        return self.status is WorkerStatus.ALIVE

    @property
    def silent_s(self) -> float | None:
        """How long it has been silent, for a ``silent`` worker; ``None`` otherwise."""
        return self.heartbeat_age_s if self.status is WorkerStatus.SILENT else None

    @property
    def slots_in_use(self) -> int:
        """Slots it fills now (at most ``slots``), for a worker that has not ended."""
        if self.status in (WorkerStatus.STOPPED, WorkerStatus.DEAD):
            return 0
        return min(self.running, self.slots)


def worker_status(ended: WorkerEnd | None, heartbeat_age_s: float, lease_s: float) -> WorkerStatus:
    """What a row says from its facts: how it ended, if it did, else the age of its heartbeat."""
    if ended is WorkerEnd.STOPPED:
        return WorkerStatus.STOPPED
    if ended is WorkerEnd.DEAD:
        return WorkerStatus.DEAD
    if heartbeat_age_s >= lease_s * FENCE_SHARE:
        return WorkerStatus.SILENT
    return WorkerStatus.ALIVE


# -- processes of this machine ------------------------------------------------------


def _read_first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return UNKNOWN


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return UNKNOWN


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time of process ``pid``, or ``None`` if it does not exist.

    Raises:
        OSError: ``/proc`` cannot be read (not Linux): the caller falls back to ``kill(pid, 0)``.
    """
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


@functools.cache
def this_machine() -> Machine:
    """This machine, read once per process (a process keeps its boot and pid namespace)."""
    return Machine(socket.gethostname(), _read_first_line("/proc/sys/kernel/random/boot_id"), _pid_namespace())


def process_id(pid: int) -> ProcessId | None:
    """Process ``pid`` of this machine, as a lookout here would find it; ``None`` if there is none."""
    try:
        stat = _stat(pid)
    except OSError:  # no /proc: its start is unknown
        return ProcessId(this_machine(), pid, None)
    return None if stat is None else ProcessId(this_machine(), pid, stat[1])


def this_process() -> ProcessId:
    """This process, as a lookout on this machine would find it."""
    return process_id(os.getpid()) or ProcessId(this_machine(), os.getpid(), None)


def process_gone(pid: int, start: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` has ended (on this machine).

    Gone: no such pid, a zombie (killed, not yet reaped by its parent), or a process that
    started at another time (the pid was reused). Without ``/proc``, only a missing pid.
    """
    try:
        stat = _stat(pid)
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    if stat is None:
        return True
    state, started = stat
    return state in ("Z", "X", "x") or (start is not None and started != start)


# -- the lookout ------------------------------------------------------------------------


@final
class Lookout:
    """Finds the workers of this machine whose process is gone and recovers their jobs at once.

    Every :class:`~andon.Worker` runs one; an API server without a worker of its own
    (``andon serve --no-worker``) runs one too. Use :meth:`check` for one look, or
    :meth:`start` and :meth:`stop` for a thread that looks every ``every_s`` seconds (of
    ``clock``). A look reads a few rows (the unended workers of this machine) and one
    ``/proc`` file per row; it writes only when it finds a worker gone.

    Args:
        store: an open store.
        every_s: seconds between two looks.
        clock: where the thread waits (a :class:`~andon.ManualClock` in tests).
    """

    def __init__(self, store: Store, *, every_s: float = LOOKOUT_EVERY_S, clock: Clock = SYSTEM_CLOCK) -> None:
        if not every_s > 0:
            raise LifecycleError(f"every_s must be more than 0 seconds, not {every_s!r}")
        self.store = store
        self.every_s = every_s
        self.clock = clock
        self.machine = this_machine()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[Job]:
        """Look once; returns the jobs recovered from workers found gone (by this look).

        Raises:
            StorageError: the store cannot be read or written (nothing is half done).
        """
        if not self.machine.is_known:
            return []
        recovered: list[Job] = []
        for process, worker_id in self.store.workers_on(self.machine):
            if process.pid == os.getpid() or not process_gone(process.pid, process.start):
                continue
            where = f"pid {process.pid} on {process.machine.host}"
            message = f"worker {worker_id} was found gone: its process ({where}) has ended"
            jobs = self.store.recover_dead_worker(worker_id, process, message)
            if jobs is None:
                continue  # another lookout got there first
            log.warning("%s; %d job(s) recovered", message, len(jobs))
            for job in jobs:
                log.warning("job %s: its worker %s is gone; now %s", job.id, worker_id, job.status.value)
            recovered += jobs
        return recovered

    def start(self) -> None:
        """Look every ``every_s`` seconds on a thread of its own until :meth:`stop`."""
        if self._thread is not None:
            raise LifecycleError("this lookout was started already")
        self._thread = threading.Thread(target=self._loop, name="andon-lookout", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking; returns once the thread has ended (a look under way finishes first)."""
        self._halt.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        failures = 0
        while not self.clock.wait(self._halt, self.every_s if not failures else min(5.0, self.every_s * 2**failures)):
            try:
                self.check()
                failures = 0
            except AndonError as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)("looking for dead workers failed: %s", exc)
            except Exception:  # a bug: logged in full; the next look tries again
                failures += 1
                log.exception("looking for dead workers failed unexpectedly")

    def __enter__(self) -> Lookout:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
