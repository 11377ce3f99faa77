"""``GET /metrics``: the store's figures in the Prometheus text format (``prometheus_client``).

One collector, registered in a registry of the app's own (not the process-wide one, which
would mix in whatever else the process registers, and which two apps in one process would
share), turns one :meth:`andon.Client.metrics` read into metric families at every scrape.
Nothing is kept between scrapes: the counters live in the store (kept by a trigger as jobs
end), so every server of one store reports the same figures, and a restart loses none.

The figures (``kind`` is the job kind; every kind the app registers is reported, with
zeros, and every kind the store has figures for):

* ``andon_jobs{kind,state}``: jobs not yet ended, by state (queued, running, cancelling).
* ``andon_queue_depth{kind}``: queued jobs due now; ``andon_jobs_scheduled{kind}``: queued
  jobs not due yet (scheduled, or waiting out a retry backoff).
* ``andon_queue_oldest_age_seconds{kind}``: how long the queued job that became due first
  has waited since (0 when none is due).
* ``andon_cancels_pending{kind}``: cancels asked and not yet stopped (jobs in cancelling);
  ``andon_cancel_pending_oldest_seconds{kind}``: the age of the oldest such request.
* ``andon_jobs_ended_total{kind,state}``: jobs that reached succeeded, failed or cancelled
  (a resumed job that ends again counts again).
* ``andon_stop_seconds{kind,method,reason}``: a histogram of the time from a cancel request
  to the work having stopped, by stop method and cancel reason (withdrawn queued jobs,
  which never ran, are left out).
* ``andon_stops_total{kind,method}``: how often each rung of the stop ladder ended the work
  (withdrawn, cooperative, async, injected, terminated, killed, abandoned, worker_lost).
* ``andon_workers{status}``: the workers in the store's registry by status (alive, silent,
  stopped, dead; rows of workers gone for a day are pruned).
* ``andon_worker_slots{state}``: slots of the workers alive now, ``in_use`` and ``total``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator
from typing import Final, final

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

import andon
from andon.api._runtime import Runtime

__all__ = [
    "StoreCollector",
    "WorkersCollector",
    "metric_families",
    "metrics_registry",
    "metrics_router",
    "worker_families",
]

_ACTIVE: Final = (andon.JobStatus.QUEUED, andon.JobStatus.RUNNING, andon.JobStatus.CANCELLING)
_ENDED: Final = (andon.JobStatus.SUCCEEDED, andon.JobStatus.FAILED, andon.JobStatus.CANCELLED)
_WITHDRAWN: Final = andon.StopMethod.WITHDRAWN.value


@final
class StoreCollector:
    """A ``prometheus_client`` collector that reads the store once per scrape.

    Args:
        read: the store read (:meth:`andon.Client.metrics`); it blocks, so a scrape runs
            off the event loop.
        kinds: the kinds to report even when the store has nothing of them yet.
    """

    def __init__(self, read: Callable[[], andon.MetricsSnapshot], kinds: Callable[[], Collection[str]]) -> None:
        self._read = read
        self._kinds = kinds

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(self._read(), self._kinds())


def metric_families(snapshot: andon.MetricsSnapshot, kinds: Collection[str] = ()) -> list[Metric]:
    """The metric families of one store read; ``kinds`` are reported with zeros if absent."""
    every_kind = sorted({*kinds, *(a.kind for a in snapshot.active), *(kind for kind, _ in snapshot.ended)})
    active = {(a.kind, a.status): a for a in snapshot.active}
    return [
        *_active_families(snapshot, every_kind, active),
        *_ended_families(snapshot, every_kind),
    ]


def _active_families(
    snapshot: andon.MetricsSnapshot, kinds: list[str], active: dict[tuple[str, andon.JobStatus], andon.ActiveJobs]
) -> list[Metric]:
    jobs = GaugeMetricFamily("andon_jobs", "Jobs not yet ended, by kind and state.", labels=["kind", "state"])
    depth = GaugeMetricFamily("andon_queue_depth", "Queued jobs due now, waiting for a worker.", labels=["kind"])
    scheduled = GaugeMetricFamily(
        "andon_jobs_scheduled", "Queued jobs not due yet (scheduled, or waiting out a retry backoff).", labels=["kind"]
    )
    oldest = GaugeMetricFamily(
        "andon_queue_oldest_age_seconds",
        "How long the queued job that became due first has waited since (0: none due).",
        labels=["kind"],
    )
    pending = GaugeMetricFamily(
        "andon_cancels_pending", "Cancels asked and not yet stopped (jobs in cancelling).", labels=["kind"]
    )
    pending_age = GaugeMetricFamily(
        "andon_cancel_pending_oldest_seconds",
        "The age of the oldest cancel not yet stopped (0: none).",
        labels=["kind"],
    )
    for kind in kinds:
        for status in _ACTIVE:
            found = active.get((kind, status))
            jobs.add_metric([kind, status.value], found.jobs if found else 0)
        queued = active.get((kind, andon.JobStatus.QUEUED))
        depth.add_metric([kind], queued.jobs - queued.scheduled if queued else 0)
        scheduled.add_metric([kind], queued.scheduled if queued else 0)
        oldest.add_metric([kind], _age(snapshot.at, queued.oldest_due_at if queued else None))
        cancelling = active.get((kind, andon.JobStatus.CANCELLING))
        pending.add_metric([kind], cancelling.jobs if cancelling else 0)
        pending_age.add_metric([kind], _age(snapshot.at, cancelling.oldest_request_at if cancelling else None))
    return [jobs, depth, scheduled, oldest, pending, pending_age]


def _ended_families(snapshot: andon.MetricsSnapshot, kinds: list[str]) -> list[Metric]:
    ended = CounterMetricFamily(
        "andon_jobs_ended",
        "Jobs that reached a terminal state, by kind and state (a resumed job that ends again counts again).",
        labels=["kind", "state"],
    )
    for kind in kinds:
        for status in _ENDED:
            ended.add_metric([kind, status.value], snapshot.ended.get((kind, status.value), 0))
    stops = CounterMetricFamily(
        "andon_stops",
        "Stops after a cancel request, by kind and the rung of the stop ladder that ended the work.",
        labels=["kind", "method"],
    )
    rungs: dict[tuple[str, str], int] = {}
    # Per (kind, method, reason): each bucket's own count, and the seconds added up.
    buckets: dict[tuple[str, str, str], tuple[dict[float, int], list[float]]] = {}
    for s in snapshot.stops:
        rungs[(s.kind, s.method)] = rungs.get((s.kind, s.method), 0) + s.stops
        if s.method == _WITHDRAWN:
            continue
        counts, total = buckets.setdefault((s.kind, s.method, s.reason), ({}, [0.0]))
        counts[s.le] = counts.get(s.le, 0) + s.stops
        total[0] += s.seconds
    for (kind, method), n in sorted(rungs.items()):
        stops.add_metric([kind, method], n)
    histogram = HistogramMetricFamily(
        "andon_stop_seconds",
        "Seconds from a cancel request to the work having stopped, by kind, stop method and cancel reason"
        " (withdrawn queued jobs left out).",
        labels=["kind", "method", "reason"],
    )
    for labels, (counts, total) in sorted(buckets.items()):
        cumulative, running = [], 0
        for le in snapshot.bounds:
            running += counts.get(le, 0)
            cumulative.append((_bound(le), float(running)))
        histogram.add_metric(list(labels), cumulative, total[0])
    return [ended, stops, histogram]


def _bound(le: float) -> str:
    """A bucket's ``le`` label as Prometheus writes it."""
    return "+Inf" if math.isinf(le) else repr(le)


def _age(now: float, since: float | None) -> float:
    return 0.0 if since is None else max(0.0, now - since)


@final
class WorkersCollector:
    """A ``prometheus_client`` collector of the workers registry, read once per scrape."""

    def __init__(self, read: Callable[[], list[andon.WorkerInfo]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from worker_families(self._read())


def worker_families(workers: list[andon.WorkerInfo]) -> list[Metric]:
    """``andon_workers{status}`` and ``andon_worker_slots{state}`` from the registry's rows."""
    by_status = GaugeMetricFamily("andon_workers", "Workers in the store's registry, by status.", labels=["status"])
    for status in andon.WorkerStatus:
        by_status.add_metric([status.value], sum(1 for w in workers if w.status is status))
    slots = GaugeMetricFamily("andon_worker_slots", "Slots of the workers alive now.", labels=["state"])
    alive = [w for w in workers if w.is_alive]
    slots.add_metric(["in_use"], sum(w.slots_in_use for w in alive))
    slots.add_metric(["total"], sum(w.slots for w in alive))
    return [by_status, slots]


def metrics_registry(runtime: Runtime) -> CollectorRegistry:
    """A registry of the app's own holding the store's collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(runtime.client.metrics, lambda: [kind.kind for kind in runtime.kinds]))
    registry.register(WorkersCollector(runtime.client.workers))
    return registry


metrics_router = APIRouter()


# Not in the OpenAPI document: a scrape target in Prometheus's text format, not a JSON operation.
@metrics_router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request) -> Response:
    """The store's figures in the Prometheus text format (see this module's docstring)."""
    runtime: Runtime = request.app.state.andon
    registry: CollectorRegistry = request.app.state.andon_metrics
    body = await runtime.call(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
