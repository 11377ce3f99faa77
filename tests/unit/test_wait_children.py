"""``ctx.wait_children`` when the children ended because this job's own stop reached them:
the stop has committed while its notice is still on its way to the worker, and the wait must
end in ``Cancelled``, never as if the children had finished (issue 16)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import andon
from andon import CancelReason, JobStatus
from andon._cancel import CancelToken
from andon._context import Context
from andon._family import NOW, Due
from andon._jobs import CancelInfo, Job, ResultItem


class Sink:
    def emit(self, at: float, encoded: str) -> None: ...
    def progress(self, done: float, total: float | None, message: str | None) -> None: ...
    def child_started(self, pid: int) -> None: ...
    def checkpoint(self, at: float, encoded: str) -> None: ...


def job(job_id: str, status: JobStatus, reason: CancelReason | None = None) -> Job:
    cancel = None if reason is None else CancelInfo(requested_at=1.0, reason=reason, by="alice", message="why")
    return Job(id=job_id, kind="k", params={}, status=status, created_at=1.0, cancel=cancel, parent_id="p")


class Family:
    def __init__(self, children: list[Job], me: Job) -> None:
        self._children = children
        self._me = me

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
        raise AssertionError("not submitting")

    def children(self) -> list[Job]:
        return self._children

    def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        return [j for j in self._children if j.id in job_ids]

    def items(self, job_id: str) -> list[ResultItem]:
        return []

    def me(self) -> Job:
        return self._me


def context(family: Family) -> tuple[Context, CancelToken]:
    token = CancelToken()
    ctx = Context(
        job_id="p", kind="k", attempt=1, params={}, token=token, sink=Sink(), child_grace_s=0.5, family=family
    )
    return ctx, token


def test_children_stopped_by_this_jobs_cancel_end_the_wait_in_cancelled() -> None:
    stopped = [job("c1", JobStatus.CANCELLED, CancelReason.PARENT_CANCELLED), job("c2", JobStatus.SUCCEEDED)]
    ctx, token = context(Family(stopped, job("p", JobStatus.CANCELLING, CancelReason.USER)))
    with pytest.raises(andon.Cancelled) as raised:
        ctx.wait_children()
    assert raised.value.reason is CancelReason.USER
    assert token.requested


def test_children_cancelled_by_an_earlier_stop_of_a_job_that_runs_again_are_returned() -> None:
    # A force-fail with retry cancelled them; the job runs again and is not being stopped.
    stopped = [job("c1", JobStatus.CANCELLED, CancelReason.PARENT_CANCELLED)]
    ctx, token = context(Family(stopped, job("p", JobStatus.RUNNING)))
    assert [c.id for c in ctx.wait_children()] == ["c1"]
    assert not token.requested


def test_children_that_finished_are_returned_without_reading_the_parent() -> None:
    class NoMe(Family):
        def me(self) -> Job:
            raise AssertionError("the parent is read only when a child was stopped by its stop")

    done = [job("c1", JobStatus.SUCCEEDED), job("c2", JobStatus.FAILED)]
    ctx, _ = context(NoMe(done, job("p", JobStatus.RUNNING)))
    assert [c.status for c in ctx.wait_children()] == [JobStatus.SUCCEEDED, JobStatus.FAILED]
