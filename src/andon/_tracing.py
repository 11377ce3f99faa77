"""Traces of attempts, when OpenTelemetry is installed (``pip install andon[otel]``).

Each attempt a worker runs is one span, ``andon.job <kind>``, from its claim to the moment
the store recorded its end, with the job's id, kind and attempt, and at the end the status
the store gave it. A stop adds events at the moments they happened: ``cancel.requested``
(when the worker heard of it, with the reason), ``cancel.acknowledged`` (when the handler
first saw it) and ``cancel.stopped`` (when the work had stopped, with the stop method,
which is also an attribute of the span).

The spans go to whatever tracer provider the process configured (the OpenTelemetry SDK
and an exporter); with none configured, OpenTelemetry's API makes them non-recording, and
the worker keeps none (one call per attempt to find that out). The API is imported once,
when the first worker is made (:func:`attempt_tracer`); without it installed the worker
holds ``None`` and its attempts pay one ``is None`` test each. Nothing in the stop path
imports this module's dependencies.
"""

from __future__ import annotations

import functools
from typing import Any, Final, final

from andon._cancel import CancelReason
from andon._jobs import Job, Outcome, OutcomeKind

__all__ = ["AttemptTrace", "AttemptTracer", "attempt_tracer"]

_NS: Final = 1_000_000_000


def _ns(at: float) -> int:
    """A time in seconds (the worker's clock: wall-clock seconds) as OpenTelemetry's nanoseconds."""
    return int(at * _NS)


@final
class AttemptTrace:
    """The span of one attempt; the worker calls it at each moment of the attempt's stop."""

    def __init__(self, span: Any) -> None:  # Any: an opentelemetry Span (the API may be absent)
        self._span = span

    def cancel_requested(self, reason: CancelReason, message: str | None, at: float) -> None:
        attributes = {"andon.cancel.reason": reason.value}
        if message:
            attributes["andon.cancel.message"] = message
        self._span.add_event("cancel.requested", attributes, timestamp=_ns(at))

    def end(self, outcome: Outcome, status: str | None, at: float) -> None:
        """The store recorded the attempt's end (``status``: the job's state after it, or
        ``None`` if the store did not take it)."""
        span = self._span
        if outcome.acknowledged_at is not None:
            span.add_event("cancel.acknowledged", timestamp=_ns(outcome.acknowledged_at))
        if outcome.stop_method is not None:
            method = outcome.stop_method.value
            stopped_at = outcome.stopped_at if outcome.stopped_at is not None else at
            span.add_event("cancel.stopped", {"andon.stop.method": method}, timestamp=_ns(stopped_at))
            span.set_attribute("andon.stop.method", method)
        span.set_attribute("andon.attempt.outcome", outcome.kind.value)
        if status is not None:
            span.set_attribute("andon.job.status", status)
        if outcome.kind is OutcomeKind.FAILED and outcome.error is not None:
            _mark_error(span, f"{outcome.error.type}: {outcome.error.message}")
        span.end(end_time=_ns(at))


@final
class AttemptTracer:
    """Starts the span of each attempt a worker claims."""

    def __init__(self, tracer: Any) -> None:  # Any: an opentelemetry Tracer
        self._tracer = tracer

    def start(self, job: Job, at: float) -> AttemptTrace | None:
        """The attempt's span, or ``None`` when nothing records it (no tracer provider is
        configured, or it samples this one out): then the attempt's moments cost nothing more."""
        attributes = {"andon.job.id": job.id, "andon.job.kind": job.kind, "andon.job.attempt": job.attempt}
        span = self._tracer.start_span(f"andon.job {job.kind}", attributes=attributes, start_time=_ns(at))
        return AttemptTrace(span) if span.is_recording() else None


@functools.cache
def attempt_tracer() -> AttemptTracer | None:
    """The tracer of attempts, or ``None`` when OpenTelemetry's API is not installed (looked
    for once per process)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    from andon import __version__

    return AttemptTracer(trace.get_tracer("andon", __version__))


def _mark_error(span: Any, description: str) -> None:  # Any: an opentelemetry Span
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description))
