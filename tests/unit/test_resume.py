"""Checkpoints and resume as rules and buffers (issue 15): where a requeued attempt goes on
from, when a job may be resumed, and how a checkpoint travels with the items before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from andon import CancelInfo, CancelReason, Checkpoint, InvalidTransition, Job, JobStatus, StopMethod
from andon._cancel import CancelToken
from andon._context import Context
from andon._jobs import Outcome, OutcomeKind, decide_resume, decide_settlement, stop_strength
from andon._output import OutputBuffer

Q, R, C = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING
FAIL, X, OK = JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SUCCEEDED
CHECKPOINT = Checkpoint({"next": 7}, items=7, attempt=1, at=50.0)


def job(status: JobStatus, *, checkpoint: Checkpoint | None = CHECKPOINT, **fields: Any) -> Job:
    cancel_reason = fields.pop("cancel_reason", None)
    cancel = CancelInfo(requested_at=10.0, reason=cancel_reason) if cancel_reason else None
    values: dict[str, Any] = {"attempt": 1, "max_attempts": 3, **fields}
    return Job("j", "k", {}, status, 0.0, cancel=cancel, checkpoint=checkpoint, **values)


STOPPED = Outcome(OutcomeKind.STOPPED, stop_method=StopMethod.COOPERATIVE)
FAILED = Outcome(OutcomeKind.FAILED)
LOST = Outcome(OutcomeKind.LOST)


@pytest.mark.parametrize(
    ("subject", "outcome", "status", "resume"),
    [
        (job(R), STOPPED, Q, True),  # shutdown or a lost lease: goes on where it left off
        (job(R, checkpoint=None), STOPPED, Q, False),  # nothing stored: starts over
        (job(R), LOST, Q, True),  # its worker vanished: goes on where it left off
        (job(R), FAILED, Q, False),  # a failure retries from scratch...
        (job(R, retry_resume=True), FAILED, Q, True),  # ...unless Retry(resume=True)
        (job(R, retry_resume=True, checkpoint=None), FAILED, Q, False),
        (job(R, retry_resume=True, failures=2), FAILED, FAIL, False),  # no attempt left
        (job(C, cancel_reason=CancelReason.PAUSED), STOPPED, Q, True),  # paused --now
        (job(C, cancel_reason=CancelReason.PAUSED), FAILED, Q, False),  # failed before it saw the pause
        (job(C, cancel_reason=CancelReason.USER), STOPPED, X, False),  # a cancel is not undone
    ],
)
def test_where_a_requeued_attempt_goes_on_from(subject: Job, outcome: Outcome, status: JobStatus, resume: bool) -> None:
    decided = decide_settlement(subject, outcome)
    assert (decided.status, decided.resume) == (status, resume)


def test_a_pause_is_the_weakest_stop() -> None:
    assert stop_strength(CancelReason.PAUSED, True) < stop_strength(CancelReason.FORCED, True)


@pytest.mark.parametrize("status", [X, FAIL])
def test_a_cancelled_or_failed_job_with_a_checkpoint_can_be_resumed(status: JobStatus) -> None:
    assert decide_resume(job(status)) == CHECKPOINT


@pytest.mark.parametrize("status", [Q, R, C, OK])
def test_only_cancelled_or_failed_jobs_can_be_resumed(status: JobStatus) -> None:
    with pytest.raises(InvalidTransition, match="only a cancelled or failed job"):
        decide_resume(job(status))


def test_a_job_without_a_checkpoint_cannot_be_resumed() -> None:
    with pytest.raises(InvalidTransition, match="no checkpoint"):
        decide_resume(job(X, checkpoint=None))


def test_a_child_is_resumed_only_while_its_parent_runs() -> None:
    child = job(X, parent_id="p", root_id="p")
    assert decide_resume(child, R) == CHECKPOINT
    for parent in (C, FAIL, X, OK, Q, None):
        with pytest.raises(InvalidTransition, match="child of job p, which is"):
            decide_resume(child, parent)


def test_a_detached_child_is_resumed_whatever_its_parent_does() -> None:
    assert decide_resume(job(X, parent_id="p", root_id="p", detached=True), FAIL) == CHECKPOINT


def items_and_checkpoint(out: OutputBuffer) -> tuple[list[int], int | None]:
    with out.flush_lock:
        update = out.take(None)
    return [seq for seq, _, _ in update.items], update.checkpoint.items if update.checkpoint else None


def test_a_checkpoint_goes_out_with_every_item_before_it(tmp_path: Path) -> None:
    out = OutputBuffer("j", 1, 0, lambda: None, spool_dir=tmp_path)
    for seq in range(3):
        out.emit(float(seq), str(seq))
    out.checkpoint(3.0, '{"next":3}')
    out.emit(4.0, "3")
    assert items_and_checkpoint(out) == ([0, 1, 2, 3], 3)
    assert items_and_checkpoint(out) == ([], None)


def test_a_failed_flush_keeps_the_checkpoint_unless_a_newer_one_came(tmp_path: Path) -> None:
    out = OutputBuffer("j", 1, 0, lambda: None, spool_dir=tmp_path)
    out.emit(0.0, "0")
    out.checkpoint(1.0, '{"next":1}')
    with out.flush_lock:
        update = out.take(None)
        out.restore(update)
    assert items_and_checkpoint(out) == ([0], 1)
    out.checkpoint(2.0, '{"next":1,"again":true}')
    with out.flush_lock:
        update = out.take(None)
        out.emit(3.0, "1")
        out.checkpoint(4.0, '{"next":2}')
        out.restore(update)
    assert items_and_checkpoint(out) == ([1], 2)


def test_a_checkpoint_waits_for_the_journalled_items_before_it(tmp_path: Path) -> None:
    out = OutputBuffer("j", 1, 0, lambda: None, spool_dir=tmp_path, max_bytes=500)
    for seq in range(100):
        out.emit(float(seq), f'{{"i":{seq},"pad":"{"x" * 40}"}}')
    out.checkpoint(100.0, '{"next":100}')
    assert out.journalled
    seen: list[int] = []
    while True:
        seqs, checkpoint = items_and_checkpoint(out)
        seen.extend(seqs)
        if checkpoint is not None:
            assert seen == list(range(100)), "the checkpoint went out before items it follows"
            break
        assert seqs, "the checkpoint was lost"


def test_nothing_is_stored_after_the_attempt_ended(tmp_path: Path) -> None:
    import andon

    out = OutputBuffer("j", 1, 0, lambda: None, spool_dir=tmp_path)
    out.close(None)
    with pytest.raises(andon.Cancelled):
        out.checkpoint(1.0, "{}")


def context_on(out: OutputBuffer, resumed: object = None) -> Context:
    return Context(
        job_id="j", kind="k", attempt=1, params={}, token=CancelToken(), sink=out, child_grace_s=0.5, resumed=resumed
    )


def test_reading_resumed_on_a_fresh_start_stores_the_start_as_a_checkpoint(tmp_path: Path) -> None:
    """So an attempt killed before its first checkpoint goes on from scratch without keeping
    a second copy of what it emitted (the store drops the items after the start)."""
    out = OutputBuffer("j", 1, 5, lambda: None, spool_dir=tmp_path)
    ctx = context_on(out)
    assert ctx.resumed is None
    assert ctx.resumed is None  # noted once
    ctx.emit({"i": 5})
    assert items_and_checkpoint(out) == ([5], 5)
    assert items_and_checkpoint(out) == ([], None)


def test_reading_a_real_resumed_state_stores_nothing(tmp_path: Path) -> None:
    out = OutputBuffer("j", 2, 7, lambda: None, spool_dir=tmp_path)
    assert context_on(out, {"next": 7}).resumed == {"next": 7}
    assert items_and_checkpoint(out) == ([], None)
