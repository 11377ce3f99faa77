"""Traces (``andon._tracing``): with OpenTelemetry's SDK configured, each attempt a real worker
runs is a span with its cancel's moments as events; without OpenTelemetry, workers run as
before.

The spans go to the SDK's in-memory exporter. The tracer provider of a process can be set
once, so this module sets it once for all its tests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import andon
from tests.support import wait_status

pytestmark = [pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]

app = andon.App(default_grace=0.2)


@app.job("polite")
def polite(ctx: andon.Context) -> None:
    while True:
        ctx.sleep(0.01)


@app.job("deaf")
def deaf(ctx: andon.Context) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        sum(range(1000))


@app.job("quick")
def quick(ctx: andon.Context) -> int:
    return 7


_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return _EXPORTER


@pytest.fixture
def client(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[andon.Client]:
    exporter.clear()
    with andon.SqliteStore(str(tmp_path / "t.db")) as store, andon.Worker(app, store, concurrency=2):
        yield andon.Client(store, app)


def span_of(exporter: InMemorySpanExporter, job_id: str) -> ReadableSpan:
    """The finished span of the job's attempt (it ends just after the store recorded the end)."""
    deadline = time.monotonic() + 30
    while True:
        spans = [s for s in exporter.get_finished_spans() if (s.attributes or {}).get("andon.job.id") == job_id]
        if spans:
            (span,) = spans
            return span
        assert time.monotonic() < deadline, f"no span for job {job_id}"
        time.sleep(0.01)


def run_and_cancel(client: andon.Client, kind: str) -> andon.Job:
    job = client.submit(kind)
    wait_status(client, job.id, andon.JobStatus.RUNNING, 30)
    return client.cancel(job.id, wait=True, timeout=30).job


@pytest.mark.parametrize(("kind", "method"), [("polite", "cooperative"), ("deaf", "injected")])
def test_a_stopped_attempt_is_a_span_with_the_moments_of_its_stop(
    client: andon.Client, exporter: InMemorySpanExporter, kind: str, method: str
) -> None:
    job = run_and_cancel(client, kind)
    assert job.cancel is not None
    assert job.cancel.stop_method is not None
    assert job.cancel.stop_method.value == method
    span = span_of(exporter, job.id)
    assert span.name == f"andon.job {kind}"
    assert dict(span.attributes or {}) == {
        "andon.job.id": job.id,
        "andon.job.kind": kind,
        "andon.job.attempt": 1,
        "andon.job.status": "cancelled",
        "andon.attempt.outcome": "stopped",
        "andon.stop.method": method,
    }
    events = {event.name: event for event in span.events}
    assert list(events) == ["cancel.requested", "cancel.acknowledged", "cancel.stopped"]
    assert dict(events["cancel.requested"].attributes or {}) == {"andon.cancel.reason": "user"}
    assert dict(events["cancel.stopped"].attributes or {}) == {"andon.stop.method": method}
    # The events are at the moments the store recorded, in order, within the span.
    assert job.cancel.acknowledged_at is not None
    assert job.cancel.stopped_at is not None
    assert events["cancel.acknowledged"].timestamp == int(job.cancel.acknowledged_at * 1e9)
    assert events["cancel.stopped"].timestamp == int(job.cancel.stopped_at * 1e9)
    assert span.start_time is not None
    assert span.end_time is not None
    moments = [span.start_time, *(event.timestamp for event in events.values()), span.end_time]
    assert moments == sorted(moments)


def test_an_attempt_that_ends_by_itself_is_a_span_without_cancel_events(
    client: andon.Client, exporter: InMemorySpanExporter
) -> None:
    job = client.submit("quick")
    assert client.wait_finished(job.id, timeout=30).status is andon.JobStatus.SUCCEEDED
    span = span_of(exporter, job.id)
    assert (span.attributes or {})["andon.job.status"] == "succeeded"
    assert span.events == ()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=50, check=False
    )


def test_without_opentelemetry_a_worker_runs_and_stops_jobs_as_before(tmp_path: Path) -> None:
    """OpenTelemetry made unimportable in a fresh interpreter (``sys.modules[name] = None``
    makes ``import`` raise ImportError, as for a package that is not installed)."""
    done = run_python(
        f"""
        import sys
        sys.modules["opentelemetry"] = None
        import andon
        from andon._tracing import attempt_tracer
        from tests.support import wait_status
        app = andon.App(default_grace=0.2)

        @app.job("quick")
        def quick(ctx):
            return 7

        @app.job("polite")
        def polite(ctx):
            while True:
                ctx.sleep(0.01)

        assert attempt_tracer() is None
        with andon.SqliteStore({str(tmp_path / "n.db")!r}) as store, andon.Worker(app, store):
            client = andon.Client(store, app)
            assert client.wait_finished(client.submit("quick").id, timeout=30).result == 7
            job = client.submit("polite")
            wait_status(client, job.id, andon.JobStatus.RUNNING, 30)
            stopped = client.cancel(job.id, wait=True, timeout=30).job
            assert stopped.cancel.stop_method.value == "cooperative", stopped
        assert "opentelemetry.trace" not in sys.modules
        print("ran without opentelemetry")
        """
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran without opentelemetry" in done.stdout


def test_opentelemetry_is_not_imported_before_a_worker_is_made() -> None:
    done = run_python(
        """
        import sys
        import andon
        assert "opentelemetry" not in sys.modules, "imported by andon itself"
        print("not imported")
        """
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_with_no_tracer_provider_configured_a_worker_keeps_no_span() -> None:
    done = run_python(
        """
        import andon
        from andon._ids import new_job_id
        from andon._tracing import attempt_tracer
        tracer = attempt_tracer()
        assert tracer is not None, "the API is installed here"
        job = andon.Job(id=new_job_id(), kind="quick", params={}, status=andon.JobStatus.RUNNING, created_at=0.0)
        assert tracer.start(job, 0.0) is None
        print("no span")
        """
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no span" in done.stdout
