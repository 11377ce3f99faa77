"""Checks that tests of many jobs make on each finished job's record: it ended once, last,
in the state it shows; its items are numbered without gaps; a cancel of running work
stopped it in time, with nothing emitted after."""

from __future__ import annotations

import andon


def terminal_transitions(events: list[andon.JobEvent]) -> list[andon.JobEvent]:
    """Events that moved the job into a terminal state (a withdrawal's request event names
    the state it leads to but is not the transition itself)."""
    return [e for e in events if e.to_status is not None and e.to_status.is_terminal and e.type != "cancel requested"]


def assert_ended_once(job: andon.Job, events: list[andon.JobEvent], context: str) -> andon.JobEvent:
    """The job is terminal, its events are numbered 1..n, and one event, the last, moved it
    into the state it shows. Returns that event."""
    assert job.is_terminal, context
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), context
    ended = terminal_transitions(events)
    assert len(ended) == 1, f"{context}: terminal transitions {ended}"
    assert ended[0] is events[-1], f"{context}: events after the end: {events}"
    assert ended[0].to_status is job.status, context
    return ended[0]


def assert_items_numbered(job: andon.Job, items: list[andon.ResultItem], context: str) -> None:
    """The job counts the items it holds, and their numbers run 0..n-1."""
    assert job.items_count == len(items), context
    assert [item.seq for item in items] == list(range(len(items))), f"{context}: seqs are not 0..n-1"


def assert_stopped_within(
    cancel: andon.CancelInfo, items: list[andon.ResultItem], bound_s: float, context: str
) -> None:
    """A cancel of running work: the handler acknowledged it, the work stopped less than
    ``bound_s`` seconds after the request, and nothing was emitted after the stop."""
    assert cancel.acknowledged_at is not None, context
    assert cancel.stopped_at is not None, context
    assert cancel.requested_at <= cancel.acknowledged_at <= cancel.stopped_at, f"{context}: {cancel}"
    assert cancel.stop_seconds is not None, context
    assert cancel.stop_seconds < bound_s, f"{context}: the stop took {cancel.stop_seconds:.2f} s"
    late = [item for item in items if item.at > cancel.stopped_at]
    assert not late, f"{context}: emitted after the work stopped at {cancel.stopped_at}: {late}"
