"""The client: submit, inspect, cancel, retry and delete jobs. Every shell calls this."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, final

from andon._cancel import CancelReason
from andon._errors import ConfigurationError, InvalidParams, InvalidTransition, JobFinished, JobNotFound, WaitTimeout
from andon._ids import is_job_id, new_job_id
from andon._jobs import Job, JobEvent, JobStatus, ResultItem
from andon._registry import DEFAULT, App, _Default
from andon._storage import CancelResult, Change, JobFilter, KindStats, NewJob, Page, Store, open_store
from andon._worker import deliver_locally, wake_local_workers

__all__ = ["Client", "connect"]


@final
class Client:
    """Operations on jobs, against one store.

    Args:
        store: an open store.
        app: the job kinds, needed to submit (params are validated against them).
        actor: who is acting, recorded in job history (e.g. ``"cli"``, ``"user:alice"``).
    """

    def __init__(
        self,
        store: Store,
        app: App | None = None,
        *,
        actor: str | None = None,
        owns_store: bool = False,
    ) -> None:
        self.store = store
        self.app = app
        self.actor = actor
        self._owns_store = owns_store

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- submitting -----------------------------------------------------------

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        *,
        timeout: float | _Default | None = DEFAULT,
        priority: int = 0,
    ) -> Job:
        """Validate params and queue one job.

        Raises:
            UnknownKind: no handler for ``kind``.
            InvalidParams: the params do not fit the handler (nothing is created).
        """
        return self.submit_many(kind, [params or {}], timeout=timeout, priority=priority)[0]

    def submit_many(
        self,
        kind: str,
        params_list: Iterable[Mapping[str, Any]],
        *,
        timeout: float | _Default | None = DEFAULT,
        priority: int = 0,
    ) -> list[Job]:
        """Queue many jobs of one kind in one transaction: all are created or none."""
        spec = self._app().get(kind)
        timeout_s = spec.timeout_s if timeout is DEFAULT else timeout
        if timeout_s is not None and not timeout_s > 0:
            raise InvalidParams(kind, ["timeout: must be a positive number of seconds"])
        new = [
            NewJob(
                id=new_job_id(),
                kind=kind,
                params=spec.validate(params),
                max_attempts=spec.retry.max_attempts,
                retry_backoff_s=spec.retry.backoff_s,
                timeout_s=timeout_s,
                priority=priority,
            )
            for params in params_list
        ]
        jobs = self.store.submit(new, self.actor)
        wake_local_workers()
        return jobs

    def retry(self, job_id: str) -> Job:
        """Queue a new job with the same kind and params as a failed or cancelled one.

        Raises:
            JobNotFound: unknown id.
            InvalidTransition: the job is still active, or it succeeded.
        """
        old = self.get(job_id)
        if old.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise InvalidTransition(
                job_id,
                old.status.value,
                "retry",
                f"cannot retry job {job_id}: it is {old.status.value} (only failed or cancelled jobs can be retried)",
            )
        spec = self._app().get(old.kind)
        new = NewJob(
            id=new_job_id(),
            kind=old.kind,
            params=spec.validate(old.params),
            max_attempts=spec.retry.max_attempts,
            retry_backoff_s=spec.retry.backoff_s,
            timeout_s=old.timeout_s,
            priority=old.priority,
            retry_of=old.id,
        )
        job = self.store.submit([new], self.actor)[0]
        wake_local_workers()
        return job

    def _app(self) -> App:
        if self.app is None:
            raise ConfigurationError("this client has no app; pass app= to submit or retry jobs")
        return self.app

    # -- reading --------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """Raises :class:`~andon.JobNotFound`."""
        return self.store.get(_checked(job_id))

    def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus | str] = (),
        kinds: Collection[str] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """History, newest first."""
        where = JobFilter(statuses=[JobStatus(s) for s in statuses], kinds=list(kinds))
        return self.store.list_jobs(where, max(1, min(limit, 1000)), cursor)

    def events(self, job_id: str) -> list[JobEvent]:
        return self.store.events(_checked(job_id))

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[ResultItem]:
        """Partial results in emit order, readable while the job runs and after it ends."""
        return self.store.items(_checked(job_id), max(0, offset), limit)

    def kind_stats(self) -> list[KindStats]:
        return self.store.kind_stats()

    def wait_finished(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is in a terminal state; returns it.

        Raises:
            WaitTimeout: ``timeout`` seconds passed first.
        """
        return self._wait(job_id, timeout, lambda job: job.is_terminal)

    def wait_stopped(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until no attempt of the job is running: it is terminal, or queued again
        (a force-fail or failure its retry policy re-queued). Returns the job.

        Raises:
            WaitTimeout: ``timeout`` seconds passed first.
        """
        return self._wait(job_id, timeout, lambda job: job.status not in (JobStatus.RUNNING, JobStatus.CANCELLING))

    def _wait(self, job_id: str, timeout: float | None, done: Callable[[Job], bool]) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        watcher = self.store.watch({Change.ENDED})
        try:
            while True:
                job = self.get(job_id)
                if done(job):
                    return job
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    assert timeout is not None
                    raise WaitTimeout(job_id, job.status.value, timeout)
                watcher.wait(0.5 if remaining is None else min(0.5, remaining))
        finally:
            watcher.close()

    # -- stopping -------------------------------------------------------------

    def cancel(
        self,
        job_id: str,
        *,
        reason: CancelReason = CancelReason.USER,
        message: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CancelResult:
        """Cancel a job: a queued job never starts; a running one is stopped.

        A second cancel is a no-op reporting the current state. With ``wait=True`` this
        blocks until the work has stopped (a checkpoint for nothing: it just waits) and
        returns the job in its terminal state.

        Raises:
            JobNotFound: unknown id.
            JobFinished: the job already succeeded or failed.
            WaitTimeout: ``wait=True`` and the job did not stop within ``timeout``.
        """
        return self._stop(job_id, reason, message, retry=True, wait=wait, timeout=timeout)

    def fail(
        self,
        job_id: str,
        *,
        retry: bool = True,
        message: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CancelResult:
        """Force-fail: stop the work and record the job ``failed`` (reason ``forced``).

        It counts as a failure, so the kind's retry policy applies unless ``retry=False``.
        With ``wait=True`` this blocks until the attempt has stopped: the job is then
        ``failed``, or ``queued`` again for its next attempt.
        """
        return self._stop(job_id, CancelReason.FORCED, message, retry=retry, wait=wait, timeout=timeout)

    def _stop(
        self,
        job_id: str,
        reason: CancelReason,
        message: str | None,
        *,
        retry: bool,
        wait: bool,
        timeout: float | None,
    ) -> CancelResult:
        result = self.store.request_cancel(_checked(job_id), reason, self.actor, message, retry)
        if result.job.status is JobStatus.CANCELLING and result.job.cancel is not None:
            deliver_locally(job_id, result.job.cancel.reason, result.job.cancel.message)
        if wait and not result.job.is_terminal:
            return CancelResult(self.wait_stopped(job_id, timeout), result.outcome)
        return result

    def cancel_many(
        self,
        *,
        ids: Collection[str] = (),
        statuses: Collection[JobStatus | str] = (),
        kinds: Collection[str] = (),
        message: str | None = None,
    ) -> list[CancelResult]:
        """Cancel every active job matching the filter (all active jobs if it is empty)."""
        where = JobFilter(
            statuses=[JobStatus(s) for s in statuses],
            kinds=list(kinds),
            ids=[_checked(i) for i in ids],
        )
        results = self.store.request_cancel_many(where, CancelReason.USER, self.actor, message)
        for result in results:
            if result.job.status is JobStatus.CANCELLING:
                deliver_locally(result.job.id, CancelReason.USER, message)
        return results

    def delete(self, job_id: str, *, timeout: float | None = 60.0) -> None:
        """Cancel the job if it is active (reason ``deleted``), wait until it stopped, and
        delete it with its history and results.

        Raises:
            JobNotFound: unknown id.
            WaitTimeout: the work did not stop within ``timeout``.
        """
        job = self.get(job_id)
        if job.status.is_active:
            with contextlib.suppress(JobFinished):  # it finished on its own meanwhile
                self._stop(job_id, CancelReason.DELETED, None, retry=False, wait=True, timeout=timeout)
        self.store.delete(job_id)


def _checked(job_id: str) -> str:
    """Reject what cannot be a job id before it reaches the store."""
    if not is_job_id(job_id):
        raise JobNotFound(job_id)
    return job_id


def connect(url: str | None = None, app: App | None = None, *, actor: str | None = None) -> Client:
    """Open the store ``url`` names (default: ``$ANDON_DATABASE_URL`` or ``sqlite:///andon.db``)
    and return a client that closes it when closed."""
    return Client(open_store(url), app, actor=actor, owns_store=True)
