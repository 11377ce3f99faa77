"""Helpers for the tests of the example kinds (scan, papers, crawl, extract).

They run real tools (ffprobe, Chromium, pypdf, an HTTP server on loopback), so they need
them installed: locally a missing tool skips the test with the reason; under ``CI=true``
it fails it, so CI can never pass without running them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import andon
from tests.support import cmdline, is_alive, wait_until


def require_tool(name: str, install_hint: str) -> str:
    """The path of tool ``name`` (a command, or an absolute path); skip, or fail under CI, if it is missing."""
    found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if found is None:
        message = f"{name} is not installed ({install_hint}); this test runs the real tool"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def use_tmp_as_examples_root(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Make pytest's temporary folders the examples root: the example kinds refuse folders
    outside it, and these tests put their inputs and outputs there."""
    monkeypatch.setenv("ANDON_EXAMPLES_ROOT", str(tmp_path_factory.getbasetemp()))


def processes_with(marker: str) -> list[int]:
    """Live processes (zombies excluded) whose command line contains ``marker``, except this one."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if marker in cmdline(pid) and is_alive(pid):
                found.append(pid)
    return found


@dataclass(frozen=True, slots=True)
class StopTiming:
    """One cancel of a running job, measured from the request the store recorded."""

    what: str
    stopped_s: float
    """Request -> the work stopped (``job.cancel.stop_seconds``, as andon records it)."""
    gone_s: float
    """Request -> the test saw the job's resources gone (processes, connections, files)."""

    def __str__(self) -> str:
        return f"{self.what}: stopped {self.stopped_s * 1000:.0f} ms, resources gone {self.gone_s * 1000:.0f} ms"


def cancel_and_measure(
    client: andon.Client,
    job_id: str,
    what: str,
    resources_gone: Callable[[], bool],
    timeout: float = 10.0,
) -> tuple[andon.Job, StopTiming]:
    """Cancel a running job, poll until ``resources_gone()``, wait for its terminal state.

    The poll runs right after the request (not after the job settled), so ``gone_s`` is when
    the resources really went, which may be before andon recorded the stop.
    """
    result = client.cancel(job_id, message=f"test: {what}")
    assert result.outcome is andon.CancelOutcome.REQUESTED, result
    assert result.job.cancel is not None
    requested_at = result.job.cancel.requested_at
    wait_until(resources_gone, timeout, f"the resources of job {job_id} to be gone", interval=0.005)
    gone_at = time.time()
    job = client.wait_finished(job_id, timeout)
    assert job.cancel is not None, job
    assert job.cancel.stop_seconds is not None, job
    timing = StopTiming(what, job.cancel.stop_seconds, gone_at - requested_at)
    print(f"\n[stop timing] {timing}")
    return job, timing


STOP_BOUND_S = 5.0
"""Generous on purpose: a cancel that takes 5 s is a bug, but a busy machine may take seconds
to close a browser. Each test prints the real stop time; the benchmarks report the figures."""


def assert_cancelled_with_history(
    client: andon.Client, job: andon.Job, bound_s: float, reason: andon.CancelReason = andon.CancelReason.USER
) -> andon.CancelInfo:
    """The job is ``cancelled`` for ``reason`` within ``bound_s``, and its history shows it."""
    assert job.status is andon.JobStatus.CANCELLED, job
    cancel = job.cancel
    assert cancel is not None
    assert cancel.reason is reason, cancel
    assert cancel.stopped_at is not None
    assert cancel.stop_seconds is not None
    assert cancel.stop_seconds < bound_s, f"the stop took {cancel.stop_seconds:.2f} s (bound {bound_s} s)"
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.started_at <= cancel.requested_at <= cancel.stopped_at <= job.finished_at + 0.001
    moves = [(event.from_status, event.to_status) for event in client.events(job.id) if event.to_status]
    assert (andon.JobStatus.RUNNING, andon.JobStatus.CANCELLING) in moves, moves
    assert (andon.JobStatus.CANCELLING, andon.JobStatus.CANCELLED) in moves, moves
    return cancel
