"""The workers registry (``andon._workers``): registration, clean stops, the rows with what
they mean now, and the recovery of a worker found dead. A worker's heartbeat rides in its
lease renewal (``_work.py``: ``renew_leases(heartbeat=...)``)."""

from __future__ import annotations

from collections import defaultdict

from andon._jobs import ErrorInfo, Job, Outcome, OutcomeKind
from andon._storage._connector import IfUnsure, Tx
from andon._storage._ops._base import C
from andon._storage._ops._work import WorkOperations
from andon._storage._rows import job_from_row, registration_args, worker_from_row
from andon._workers import WORKER_ROWS_KEPT_S, Machine, ProcessId, WorkerInfo, WorkerRegistration, this_machine

__all__ = ["WorkerOperations"]


class WorkerOperations(WorkOperations[C]):
    def register_worker(self, worker: WorkerRegistration, keep_s: float = WORKER_ROWS_KEPT_S) -> None:
        now = self._clock.now()
        args = registration_args(worker) | {"now": now, "lease_base": self._db.lease_base(), "before": now - keep_s}

        def body(tx: Tx) -> None:
            # Rows of workers gone for longer than keep_s go as another one comes.
            tx.one("prune_workers", args)
            tx.one("register_worker", args)

        self._db.write(body, IfUnsure.RETRY)

    def mark_worker_stopped(self, worker_id: str) -> None:
        args = {"worker": worker_id, "now": self._clock.now()}
        self._db.write(lambda tx: tx.one("worker_stopped", args), IfUnsure.RETRY, single=True)

    def workers(self, visible_owner: str | None = None) -> list[WorkerInfo]:
        args = {"now": self._clock.now(), "lease_base": self._db.lease_base(), "boot_id": this_machine().boot_id}

        def body(tx: Tx) -> list[WorkerInfo]:
            held: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
            for row in tx.all("held_jobs", {}):
                held[row["worker_id"]].append((row["id"], row["owner"]))
            return [
                worker_from_row(row, held.get(row["id"], ()), visible_owner) for row in tx.all("list_workers", args)
            ]

        return self._db.read(body)

    def workers_on(self, machine: Machine) -> list[tuple[ProcessId, str]]:
        args = {"host": machine.host, "boot_id": machine.boot_id, "pid_ns": machine.pid_ns}
        rows = self._db.read(lambda tx: tx.all("workers_on", args))
        return [(ProcessId(machine, int(row["pid"]), row["pid_start"]), row["id"]) for row in rows]

    def recover_dead_worker(self, worker_id: str, process: ProcessId, message: str) -> list[Job] | None:
        args = {
            "worker": worker_id,
            "pid": process.pid,
            "pid_start": process.start,
            "message": message,
            "now": self._clock.now(),
        }
        lost = Outcome(OutcomeKind.LOST, error=ErrorInfo("WorkerLost", message))

        def body(tx: Tx) -> list[Job] | None:
            if tx.one("mark_worker_dead", args) is None:
                return None  # ended already: another lookout found it first, or it stopped
            held = [job_from_row(row) for row in tx.all("held_by_worker", args)]
            return self._settle_all(tx, [(job, lost) for job in held], "andon")

        # Run again after an unknown commit, it finds the row ended and reports None.
        return self._db.write(body, IfUnsure.RETRY)
