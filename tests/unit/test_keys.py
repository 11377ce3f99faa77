"""The keyed-job rules (``andon._keys``) as pure functions: what a submit does given the active
jobs of its kind and key, and which keys are refused."""

from __future__ import annotations

import pytest

import andon
from andon import JobStatus, OnConflict
from andon._keys import check_key, decide_conflict


def job(n: int, status: JobStatus) -> andon.Job:
    return andon.Job(id=f"job-{n}", kind="a", params={}, status=status, created_at=0.0, available_at=0.0, key="k")


RUNNING, WAITING, STOPPING = job(1, JobStatus.RUNNING), job(2, JobStatus.QUEUED), job(0, JobStatus.CANCELLING)


@pytest.mark.parametrize("policy", list(OnConflict))
def test_without_an_active_job_every_policy_creates(policy: OnConflict) -> None:
    conflict = decide_conflict([], policy)
    assert conflict.existing is None
    assert conflict.superseded == ()


def test_skip_answers_the_newest_active_job() -> None:
    assert decide_conflict([RUNNING], OnConflict.SKIP).existing == RUNNING
    assert decide_conflict([STOPPING, RUNNING, WAITING], OnConflict.SKIP).existing == WAITING


def test_queue_creates_only_while_nothing_waits() -> None:
    assert decide_conflict([RUNNING], OnConflict.QUEUE).existing is None
    assert decide_conflict([RUNNING, WAITING], OnConflict.QUEUE).existing == WAITING
    assert decide_conflict([WAITING], OnConflict.QUEUE).existing == WAITING


def test_supersede_stops_every_active_job() -> None:
    conflict = decide_conflict([STOPPING, RUNNING, WAITING], OnConflict.SUPERSEDE)
    assert conflict.existing is None
    assert conflict.superseded == (STOPPING, RUNNING, WAITING)


@pytest.mark.parametrize("key", ["k", "report:2024-05", "ключ", "a b", "x" * andon.MAX_KEY_CHARS])
def test_keys_andon_can_store(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty"),
        ("x" * (andon.MAX_KEY_CHARS + 1), "limit is 256"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("\ud800", "surrogates"),
        (7, "string"),
    ],
)
def test_keys_andon_refuses(key: object, problem: str) -> None:
    with pytest.raises(andon.InvalidKey, match=problem) as raised:
        check_key(key, "key")  # type: ignore[arg-type]  # a caller without types may pass anything
    assert raised.value.problems[0].startswith("key: ")
