"""Where clients and workers of one process meet, so that neither imports the other.

A :class:`~andon.Worker` joins the hub while it runs. A client in the same process that
submits or cancels tells the hub, which tells those workers at once: idle slots wake
without waiting for a poll, and a cancel reaches the attempt without waiting for the
store's notice (workers elsewhere hear of both through the store, as always).
"""

from __future__ import annotations

import weakref
from typing import Protocol

from andon._cancel import CancelReason

__all__ = ["LocalWorker", "deliver_here", "join", "leave", "wake_here"]


class LocalWorker(Protocol):
    def deliver(self, job_id: str, reason: CancelReason, message: str | None, grace_s: float | None = None) -> bool: ...

    def wake(self) -> None: ...


_workers: weakref.WeakSet[LocalWorker] = weakref.WeakSet()


def join(worker: LocalWorker) -> None:
    _workers.add(worker)


def leave(worker: LocalWorker) -> None:
    _workers.discard(worker)


def deliver_here(job_id: str, reason: CancelReason, message: str | None, grace_s: float | None = None) -> None:
    """A cancel was recorded in this process: tell the workers here at once (with the
    grace it asked for, if any)."""
    for worker in list(_workers):
        worker.deliver(job_id, reason, message, grace_s)


def wake_here() -> None:
    """Jobs were submitted in this process: wake the idle slots of the workers here."""
    for worker in list(_workers):
        worker.wake()
