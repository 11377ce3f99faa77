"""Running a worker in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import andon

__all__ = ["serve"]

log = logging.getLogger("andon.cli")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Signals:
    """Counts stop signals. The handler only sets events: it runs in the main thread between
    two bytecodes, possibly while that thread holds one of the worker's locks, so it must not
    call into the worker itself."""

    def __init__(self) -> None:
        self.first = threading.Event()
        self.second = threading.Event()
        self.count = 0

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            log.info("%s: stopping (running jobs get the shutdown grace; send it again to stop at once)", name)
            self.first.set()
        elif self.count == 2:
            log.warning("%s again: interrupting running jobs now", name)
            self.second.set()
        else:
            log.warning("%s: already stopping, waiting for the running jobs to stop", name)


def serve(worker: andon.Worker) -> None:
    """Start ``worker`` and run it until SIGINT or SIGTERM, then stop it gracefully.

    The first signal calls :meth:`andon.Worker.stop`: no new claims, running jobs get the
    worker's shutdown grace, then they are cancelled with reason ``shutdown`` and go back to
    the queue. A second signal cuts the grace short (as if it were 0). Returns once every
    attempt is settled; must be called from the main thread (it installs signal handlers).
    """
    signals = _Signals()
    previous = {signum: signal.signal(signum, signals.handle) for signum in _SIGNALS}
    try:
        worker.start()
        while not signals.first.wait(0.5):
            pass
        stopper = threading.Thread(target=worker.stop, name="andon-cli-stop")
        stopper.start()
        interrupted = False
        while stopper.is_alive():
            if not interrupted and signals.second.is_set():
                interrupted = True
                worker.interrupt()
            stopper.join(0.05)
    finally:
        if worker.state is andon.WorkerState.RUNNING:  # start() succeeded but we are unwinding
            worker.stop(grace_s=0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
