"""``andon demo``: a short, self-contained show of what a cancel does to each kind of work.

It runs an in-process worker of the example app on a temporary SQLite file, so it needs
nothing but andon itself, and takes a few seconds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

import andon
from andon.cli import _format as fmt
from andon.examples import app as example_app

__all__ = ["run_demo"]

_WAIT_S: Final = 10.0
"""Upper bound for every wait in the demo, so a broken install fails instead of hanging."""


def run_demo(console: Console, *, keep: bool) -> None:
    """Run the show on a fresh database in a temporary folder (deleted unless ``keep``)."""
    folder = Path(tempfile.mkdtemp(prefix="andon-demo-"))
    url = f"sqlite:///{folder / 'andon.db'}"
    try:
        with andon.connect(url, example_app, actor="demo") as client:
            worker = andon.Worker(example_app, client.store, concurrency=4, shutdown_grace_s=1.0)
            worker.start()
            try:
                _Show(console, client).run()
            finally:
                worker.stop(grace_s=0)
    finally:
        if keep:
            console.print()
            console.print(Text(f"The database is kept: {url}", style="bold"), soft_wrap=True)
            console.print(Text(f"  andon ls --db {url}", style="cyan"), soft_wrap=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


class _Show:
    """The scenes of the demo, narrated on ``console`` as they happen."""

    def __init__(self, console: Console, client: andon.Client) -> None:
        self.console = console
        self.client = client
        self.step = 0
        self.cancelled: list[str] = []

    def run(self) -> None:
        started = time.monotonic()
        self.console.print(Rule("andon demo: when you press Cancel, the work stops"))
        self.say("A worker with 4 slots runs the example app on a temporary SQLite file.")
        self.finishing()
        self.failing()
        counter, spinner, sleeper, filler = self.fill_slots()
        self.withdraw()
        self.stop_spinner(spinner)
        self.stop_counter(counter)
        self.stop_sleeper(sleeper)
        self.heading("The filler job was never touched: it finishes on its own")
        self.report(self.client.wait_finished(filler.id, _WAIT_S))
        self.summary(counter)
        self.console.print()
        self.console.print(Text(f"Done in {time.monotonic() - started:.1f} s.", style="bold green"))

    # -- narration ------------------------------------------------------------

    def heading(self, text: str) -> None:
        self.step += 1
        self.console.print()
        self.console.print(Text(f"{self.step}. {text}", style="bold"))

    def say(self, text: str) -> None:
        self.console.print(Text(f"   {text}"))

    def command(self, text: str) -> None:
        self.console.print(Text(f"   $ andon {text}", style="cyan"))

    def report(self, job: andon.Job) -> None:
        self.console.print(Text("   → ") + fmt.final_line(job, with_id=False))

    def submit(self, kind: str, timeout: float | None = None, **params: Any) -> andon.Job:  # Any: JSON params
        shown = " ".join(f"{key}={value}" for key, value in params.items())
        self.command(f"submit {kind} {shown}" + (f" --timeout {timeout:g}" if timeout else ""))
        if timeout is None:
            return self.client.submit(kind, params)
        return self.client.submit(kind, params, timeout=timeout)

    def cancel(self, job: andon.Job) -> andon.Job:
        self.command(f"cancel {job.id} --wait")
        result = self.client.cancel(job.id, message="cancelled by the demo", wait=True, timeout=_WAIT_S)
        label, detail, style = fmt.cancel_outcome(result)
        self.console.print(Text("   → ") + Text(label, style=style) + Text(f": {detail}" if detail else ""))
        self.cancelled.append(job.id)
        return result.job

    # -- scenes ---------------------------------------------------------------

    def finishing(self) -> None:
        self.heading("A job that runs to the end")
        job = self.submit("count", n=5, interval_s=0.1)
        self.report(self.client.wait_finished(job.id, _WAIT_S))

    def failing(self) -> None:
        self.heading("A job that fails: its error is recorded and its partial results are kept")
        job = self.submit("fail", after_items=2)
        self.report(self.client.wait_finished(job.id, _WAIT_S))

    def fill_slots(self) -> tuple[andon.Job, andon.Job, andon.Job, andon.Job]:
        self.heading("Four long jobs take all four slots")
        counter = self.submit("count", n=50, interval_s=0.1)
        spinner = self.submit("spin", seconds=60)
        sleeper = self.submit("sleeper", seconds=60)
        filler = self.submit("count", n=25, interval_s=0.1)
        for job in (counter, spinner, sleeper, filler):
            self.wait_for(job, lambda j: j.status is not andon.JobStatus.QUEUED)
        self.say("counter: cooperative, checks for a cancel at every ctx.sleep()")
        self.say("spin: a CPU loop in its own process that never checks")
        self.say("sleeper: runs `sleep 60` as a child process")
        self.say("filler: another counter, left alone")
        return counter, spinner, sleeper, filler

    def withdraw(self) -> None:
        self.heading("Cancel a job that is still queued (every slot is busy)")
        job = self.submit("count", timeout=30, n=5, interval_s=0.1)
        self.say(f"it is {self.client.get(job.id).status.value}")
        self.cancel(job)

    def stop_spinner(self, spinner: andon.Job) -> None:
        self.heading("Cancel the CPU loop that ignores cancels")
        # Wait until the child process really runs (it reports progress), and a little more.
        job = self.wait_for(spinner, lambda j: j.progress_message is not None or j.is_terminal)
        self.pause_until(job, 0.7)
        self.say("it never reaches a checkpoint: after its grace period andon sends SIGTERM")
        self.cancel(spinner)

    def stop_counter(self, counter: andon.Job) -> None:
        self.heading("Cancel the counter mid-way")
        self.pause_until(self.client.get(counter.id), 1.0)
        job = self.cancel(counter)
        self.say(f"it had counted to {job.items_count} of 50; those results are kept")

    def stop_sleeper(self, sleeper: andon.Job) -> None:
        self.heading("Cancel the job waiting on `sleep 60`")
        self.say("the cancel stops the child process at once, so the handler returns")
        self.cancel(sleeper)

    def summary(self, counter: andon.Job) -> None:
        self.console.print()
        self.console.print(Rule("history (andon ls)"))
        jobs = self.client.list_jobs(limit=50).items
        fmt.print_table(self.console, fmt.jobs_table(jobs, compact=fmt.is_narrow(self.console)))
        self.console.print(Rule("partial results kept from the cancelled counter (andon results ID)"))
        fmt.print_table(self.console, fmt.results_table(self.client.results(counter.id)))
        self.console.print(Rule("from cancel request to stopped work"))
        for job_id in self.cancelled:
            job = self.client.get(job_id)
            if job.cancel is not None:
                line = Text(f"   {job.kind:<8} ")
                line.append_text(fmt.stop_text(job.cancel.stop_method))
                pad = 12 - len(job.cancel.stop_method or "-")
                line.append(" " * pad + f"{fmt.seconds(job.cancel.stop_seconds):>7}  from request to stop")
                self.console.print(line)

    # -- helpers --------------------------------------------------------------

    def wait_for(self, job: andon.Job, done: Callable[[andon.Job], bool]) -> andon.Job:
        deadline = time.monotonic() + _WAIT_S
        while True:
            current = self.client.get(job.id)
            if done(current):
                return current
            if time.monotonic() > deadline:
                raise andon.WaitTimeout(job.id, current.status.value, _WAIT_S)
            time.sleep(0.02)

    def pause_until(self, job: andon.Job, seconds_running: float) -> None:
        """Sleep until ``job`` has been running for ``seconds_running`` seconds."""
        if job.started_at is not None:
            time.sleep(max(0.0, job.started_at + seconds_running - time.time()))
