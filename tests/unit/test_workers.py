"""The registry's rules as pure functions: what a worker's row says from its facts, and when
a process of this machine counts as gone (real processes: this one, and children)."""

from __future__ import annotations

import os
import subprocess

import pytest

from andon import WorkerStatus
from andon._workers import FENCE_SHARE, WorkerEnd, process_gone, process_id, this_machine, this_process, worker_status
from tests.support import proc_stat, wait_until

LEASE_S = 30.0


@pytest.mark.parametrize(
    ("ended", "age_s", "status"),
    [
        (None, 0.0, WorkerStatus.ALIVE),
        (None, LEASE_S / 3, WorkerStatus.ALIVE),  # one renewal interval: on time
        (None, LEASE_S * FENCE_SHARE - 0.001, WorkerStatus.ALIVE),
        (None, LEASE_S * FENCE_SHARE, WorkerStatus.SILENT),  # where it fences its own jobs
        (None, LEASE_S * 100, WorkerStatus.SILENT),  # past its lease: still only silent, never guessed dead
        (WorkerEnd.STOPPED, 0.0, WorkerStatus.STOPPED),
        (WorkerEnd.STOPPED, LEASE_S * 100, WorkerStatus.STOPPED),
        (WorkerEnd.DEAD, 0.0, WorkerStatus.DEAD),
    ],
)
def test_a_rows_status_comes_from_how_it_ended_else_from_its_heartbeats_age(
    ended: WorkerEnd | None, age_s: float, status: WorkerStatus
) -> None:
    assert worker_status(ended, age_s, LEASE_S) is status


def test_this_process_is_not_gone_and_knows_its_machine() -> None:
    me = this_process()
    assert me.pid == os.getpid()
    assert me.start is not None
    assert me.machine == this_machine()
    assert me.machine.is_known
    assert not process_gone(me.pid, me.start)


def test_a_process_that_ended_a_zombie_and_a_reused_pid_are_gone() -> None:
    child = subprocess.Popen(["sleep", "60"])
    found = process_id(child.pid)
    assert found is not None
    assert found.start is not None
    assert not process_gone(child.pid, found.start)
    assert process_gone(child.pid, found.start - 1), "another process started earlier had this pid"
    child.kill()
    wait_until(lambda: (proc_stat(child.pid) or ("",))[0] == "Z", 5, "the child to be a zombie")
    assert process_gone(child.pid, found.start), "killed, not yet reaped: it has ended"
    child.wait()
    assert process_gone(child.pid, found.start)
    assert process_id(child.pid) is None
