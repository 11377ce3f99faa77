"""The ``andon`` command line: a thin shell over the public API.

Each command parses its input, calls one :class:`andon.Client` (or :class:`andon.Worker`)
operation, and formats the result. Errors andon raises on purpose print one red line on
stderr and exit with code 1; usage errors exit with 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Final

import typer
import typer.core
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

import andon
from andon.cli import _format as fmt
from andon.cli._db import db_cli
from andon.cli._input import DbOption, load_app, parse_duration, parse_moment, parse_params, split_list
from andon.cli._sample import sample_data
from andon.cli._schedules import schedules_cli
from andon.cli._serve import serve
from andon.cli._tokens import token_cli

# The web stack (FastAPI, Starlette, uvicorn) and the example kinds are imported by the
# commands that use them (serve, demo), not here: every other command would otherwise pay
# about 0.3 s for them at each start (see the cli group of benchmarks/suite.py).

__all__ = ["cli", "main"]

DEFAULT_APP: Final = "andon.examples:app"
ACTOR: Final = "cli"

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class _Shell(typer.core.TyperGroup):
    """Turns andon's own errors into one red line and exit code 1, and Ctrl-C into 130."""

    def invoke(self, ctx: Any) -> Any:  # Any: the click Context type Typer vendors is private
        try:
            return super().invoke(ctx)
        except andon.AndonError as exc:
            _print_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            errors.print(Text("interrupted", style="yellow"), soft_wrap=True)
            raise typer.Exit(130) from None


def _print_error(exc: andon.AndonError) -> None:
    errors.print(Text(f"error: {exc}", style="red"), soft_wrap=True)


cli = typer.Typer(
    name="andon",
    cls=_Shell,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Background jobs that really stop when you press Cancel.",
)


# -- shared options -------------------------------------------------------------

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE:ATTR",
        envvar="ANDON_APP",
        show_default=False,
        help=f"The andon.App with your job kinds; give it to every serve and worker. (default: {DEFAULT_APP})",
    ),
]
JobId = Annotated[str, typer.Argument(metavar="ID", show_default=False, help="A job id.")]
StatusOption = Annotated[
    list[andon.JobStatus] | None,
    typer.Option("--status", "-s", case_sensitive=False, help="Only jobs in this status (repeatable)."),
]
KindOption = Annotated[list[str] | None, typer.Option("--kind", "-k", help="Only jobs of this kind (repeatable).")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0, metavar="SECONDS", help="How long --wait waits. (default: no limit)"),
]


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _app(app_ref: str | None) -> andon.App:
    """The app of ``--app``/``$ANDON_APP``, else the example app."""
    return load_app(app_ref or DEFAULT_APP)


def _client(db: str | None, app_ref: str | None = None, *, with_app: bool = False) -> andon.Client:
    """A client on ``db``, with the app when the command needs its kinds (submit, retry, kinds).

    The other commands read and stop jobs by id, which needs no kinds; they accept ``--app``
    (so one ``$ANDON_APP`` serves every command) but do not import it.
    """
    return andon.connect(db, _app(app_ref) if with_app else None, actor=ACTOR)


# -- running jobs -----------------------------------------------------------------


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Jobs run at once.")] = 4,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            "--shutdown-grace",
            min=0,
            metavar="SECONDS",
            help="On SIGINT/SIGTERM, how long running jobs may go on before they are stopped and requeued.",
        ),
    ] = 10.0,
    kinds: Annotated[
        str | None, typer.Option("--kinds", metavar="K1,K2", help="Only claim these kinds. (default: all)")
    ] = None,
    upgrade_db: Annotated[
        bool, typer.Option("--upgrade-db", help="Create or upgrade the database schema first (as `andon db upgrade`).")
    ] = False,
    no_scheduler: Annotated[
        bool,
        typer.Option("--no-scheduler", help="Run no scheduler here: this process never fires periodic jobs."),
    ] = False,
    log_level: Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False)] = LogLevel.INFO,
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention",
            metavar="DURATION",
            help="Also prune the history of jobs finished longer ago than this (e.g. 30d), every few"
            " minutes, leaving tombstones (as `andon prune`). One worker with it is enough. (default: never)",
        ),
    ] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Run jobs until SIGINT or SIGTERM (a second signal stops running jobs at once)."""
    retention_s = None if retention is None else parse_duration(retention, "--retention")
    logging.basicConfig(
        level=log_level.value.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    app = _app(app_ref)
    only = split_list(kinds)
    if only == []:
        raise typer.BadParameter("name at least one kind, or leave --kinds out to run all", param_hint="'--kinds'")
    if upgrade_db:
        andon.upgrade_database(db)
    store = andon.open_store(db)
    try:
        runner = andon.Worker(
            app,
            store,
            concurrency=concurrency,
            shutdown_grace_s=shutdown_grace,
            kind_names=only,
            retention_s=retention_s,
            scheduler=not no_scheduler,
        )
        banner = Text("andon worker ", style="bold")
        banner.append(f"{runner.id}  db {store.url}  kinds {', '.join(runner.kind_names)}")
        banner.append(f"  concurrency {concurrency}", style="dim")
        if retention is not None:
            banner.append(f"  prunes history older than {retention}", style="dim")
        console.print(banner, soft_wrap=True)
        serve(runner)
    finally:
        store.close()


@cli.command("serve")
def serve_http(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="ANDON_TOKEN",
            show_default=False,
            help="API requests must send 'Authorization: Bearer TOKEN'. Prefer $ANDON_TOKEN (not shown by ps).",
        ),
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve the API only; jobs run on `andon worker`s elsewhere.")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Jobs the worker runs at once.")] = 4,
    shutdown_grace: Annotated[
        float,
        typer.Option("--shutdown-grace", min=0, metavar="SECONDS", help="On Ctrl-C, how long running jobs may go on."),
    ] = 10.0,
    examples: Annotated[
        bool,
        typer.Option(
            "--examples",
            help="The demo: serve the example kinds and, if the database is empty, queue a few example jobs.",
        ),
    ] = False,
    no_demo_jobs: Annotated[
        bool,
        typer.Option("--no-demo-jobs", hidden=True, help="With --examples, queue no example jobs."),
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every HTTP request.")] = False,
    upgrade_db: Annotated[
        bool, typer.Option("--upgrade-db", help="Create or upgrade the database schema first (as `andon db upgrade`).")
    ] = False,
    no_scheduler: Annotated[
        bool,
        typer.Option("--no-scheduler", help="Run no scheduler here: this process never fires periodic jobs."),
    ] = False,
    log_level: Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False)] = LogLevel.INFO,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """The main command: the dashboard and the REST API at http://HOST:PORT, with a worker.

    Give it your app (--app or $ANDON_APP), also with --no-worker: the API takes, lists and
    retries only the kinds of the app it serves.
    """
    # Only serve imports the web stack: the other commands start without it.
    from andon.cli._http import ServeOptions, run_server

    if examples and app_ref is not None:
        raise typer.BadParameter(
            f"--examples serves the example kinds, not {app_ref!r}: leave out --app (and unset ANDON_APP)",
            param_hint="'--examples'",
        )
    if upgrade_db:
        andon.upgrade_database(db)
    options = ServeOptions(
        app=_app(app_ref),
        app_given=app_ref is not None or examples,
        db=db,
        host=host,
        port=port,
        token=token or None,
        worker=not no_worker,
        scheduler=not no_scheduler,
        concurrency=concurrency,
        shutdown_grace_s=shutdown_grace,
        example_jobs=examples and not no_demo_jobs,
        log_level=log_level.value,
        access_log=access_log,
    )
    run_server(options, console)


@cli.command()
def submit(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="The job kind (see `andon kinds`).", show_default=False)],
    params: Annotated[
        list[str] | None,
        typer.Argument(metavar="KEY=VALUE", help="Params; values are read as JSON when they parse."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the job id.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="Cancel the job if it runs longer. (default: the kind's)"),
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="KEY", help="A business key: one active job of the kind with it at a time."),
    ] = None,
    on_conflict: Annotated[
        andon.OnConflict,
        typer.Option(
            "--on-conflict",
            help="With --key, while a job with it is active: skip (print that job), queue (one waits"
            " behind it), supersede (stop it; this one starts once it has stopped).",
        ),
    ] = andon.OnConflict.SKIP,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="WHEN",
            help="Start it no earlier than this date and time (ISO 8601; local time without a zone).",
        ),
    ] = None,
    in_: Annotated[
        str | None,
        typer.Option("--in", metavar="DURATION", help="Start it no earlier than this long from now (45s, 10m, 2h)."),
    ] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Queue a job and print its id (with --key, maybe the id of a job already there: it says so).
    With --at or --in it is scheduled: no worker starts it before then, and a cancel withdraws it."""
    values = parse_params(params or [])
    if at is not None and in_ is not None:
        raise typer.BadParameter("give --at or --in, not both", param_hint="'--at/--in'")
    run_at = None if at is None else parse_moment(at, "--at")
    delay = None if in_ is None else parse_duration(in_, "--in")
    with _client(db, app_ref, with_app=True) as client:
        submission = client.submit_once(
            kind,
            values,
            timeout=andon.DEFAULT if timeout is None else timeout,
            priority=priority,
            key=key,
            on_conflict=on_conflict,
            run_at=run_at,
            delay=delay,
        )
    job = submission.job
    if quiet:
        typer.echo(job.id)
        return
    if submission.created:
        console.print(Text.assemble("submitted ", (job.id, "bold"), f"  {job.kind} ", fmt.status_text(job.status)))
        if job.due_at is not None and (run_at is not None or delay is not None):
            console.print(Text(f"scheduled: starts no earlier than {fmt.local_time(job.due_at)}", style="cyan"))
    else:
        console.print(
            Text.assemble("existing job ", (job.id, "bold"), f"  {job.kind} ", fmt.status_text(job.status)),
            Text(f"  (key {key!r} is active: nothing was submitted)", style="dim"),
        )
    for old in submission.superseded:
        console.print(Text.assemble("superseded ", (old.id, "bold"), "  ", fmt.status_text(old.status)))
    console.print(Text(f"follow it: andon watch {job.id}", style="dim"))


# -- reading ------------------------------------------------------------------------


@cli.command("ls")
def list_jobs(
    status: StatusOption = None,
    kind: KindOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Jobs per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Start after this page cursor.")] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", metavar="ID", help="Only the direct children of this job.")
    ] = None,
    root: Annotated[
        str | None, typer.Option("--root", metavar="ID", help="Only the jobs of the tree this job started.")
    ] = None,
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Only queued jobs that are not due yet (submitted with --at/--in).")
    ] = False,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """List jobs, newest first."""
    with _client(db) as client:
        page = client.list_jobs(
            statuses=status or (),
            kinds=kind or (),
            limit=limit,
            cursor=cursor,
            parent=parent,
            root=root,
            scheduled=True if scheduled else None,
        )
    if not page.items:
        console.print(Text("no jobs", style="dim"))
    else:
        fmt.print_table(console, fmt.jobs_table(page.items, compact=fmt.is_narrow(console)))
    if page.next_cursor:
        console.print(Text(f"next page: add --cursor {page.next_cursor}", style="dim"), soft_wrap=True)


@cli.command()
def show(
    job_id: JobId,
    children: Annotated[
        int, typer.Option("--children", min=0, max=1000, help="Show at most this many of its children.")
    ] = 20,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Show one job: every field, its cancel lifecycle, its place in a tree, its children and its history."""
    with _client(db) as client:
        job = client.get(job_id)
        events = client.events(job_id)
        kids = client.children(job_id, limit=children) if children else None
        below = client.descendant_counts(job_id)
        counts = client.child_counts([kid.id for kid in kids.items]) if kids else {}
    fmt.print_table(console, fmt.job_details(job))
    _print_family(job, kids, below, counts)
    console.print()
    if job.pruned_at is not None:
        console.print(fmt.pruned_line(job.pruned_at), soft_wrap=True)
        return
    fmt.print_table(console, fmt.events_table(events))
    hint = f"  (andon results {job.id}, andon export {job.id})" if job.items_count else ""
    console.print(Text(f"{job.items_count} partial result(s){hint}"), soft_wrap=True)


def _print_family(
    job: andon.Job,
    kids: andon.Page | None,
    below: dict[andon.JobStatus, int],
    counts: dict[str, dict[andon.JobStatus, int]],
) -> None:
    if not below:
        return
    console.print()
    line = Text("descendants ", style="bold")
    line.append_text(fmt.counts_text(below))
    line.append(f"  (andon tree {job.id})", style="dim")
    console.print(line, soft_wrap=True)
    if kids is None:
        return
    fmt.print_table(console, fmt.children_table(kids.items, counts))
    if kids.next_cursor is not None:
        more = f"more children: andon ls --parent {job.id} (newest first), or andon show {job.id} --children 1000"
        console.print(Text(more, style="dim"), soft_wrap=True)


@cli.command()
def tree(
    job_id: JobId,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=100_000, help="Show at most this many descendants.")
    ] = 500,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Show a job and everything under it: each job's kind, status, cancel reason and stop method."""
    with _client(db) as client:
        job = client.get(job_id)
        found = client.descendants(job_id, limit=limit)
        total = sum(client.descendant_counts(job_id).values())
        counts = _child_counts(client, [job.id, *(j.id for j in found)])
    if job.parent_id is not None:
        note = f"child of {job.parent_id}; the whole tree: andon tree {job.tree_root}"
        console.print(Text(note, style="dim"), soft_wrap=True)
    fmt.print_table(console, fmt.job_tree(job, found, counts))
    if total > len(found):
        hidden = f"... {total - len(found)} more descendants not shown ({total} in all; raise --limit to see more)"
        console.print(Text(hidden, style="yellow"), soft_wrap=True)


def _child_counts(client: andon.Client, job_ids: list[str]) -> dict[str, dict[andon.JobStatus, int]]:
    """Child counts of any number of jobs, a page's worth per read."""
    counts: dict[str, dict[andon.JobStatus, int]] = {}
    for start in range(0, len(job_ids), 1000):
        counts.update(client.child_counts(job_ids[start : start + 1000]))
    return counts


@cli.command()
def results(
    job_id: JobId,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many items.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=0, help="At most this many items.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line (JSON Lines).")] = False,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Print a job's partial results, in the order it emitted them."""
    with _client(db) as client:
        # Page by page: JSON lines of a job with gigabytes of output print in the memory of one page.
        if as_json:
            for page in client.result_pages(job_id, offset, limit):
                for item in page:
                    typer.echo(fmt.result_line(item))
            return
        items = [item for page in client.result_pages(job_id, offset, limit) for item in page]
    if items:
        fmt.print_table(console, fmt.results_table(items))
    else:
        console.print(Text("no partial results", style="dim"))


@cli.command()
def export(
    job_id: JobId,
    format: Annotated[
        andon.ResultsFormat,
        typer.Option(
            "--format", "-f", case_sensitive=False, help="jsonl: each item's data on a line; csv: flat items."
        ),
    ] = andon.ResultsFormat.JSONL,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, metavar="FILE", help="Write here. (default: standard output)"),
    ] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Write a job's items to take away, in any state: JSON Lines, or CSV when every item is
    a flat JSON object (the dashboard's downloads)."""
    with _client(db) as client:
        items = client.export_results(job_id, format)
        if output is None:
            for chunk in items:
                sys.stdout.write(chunk)
            return
        with output.open("w", encoding="utf-8", newline="") as file:  # newline="": csv ends rows itself
            file.writelines(items)
    errors.print(Text(f"wrote {items.count} item(s) of job {job_id} to {output}"), soft_wrap=True)


@cli.command()
def watch(
    job_id: JobId,
    for_s: Annotated[
        float | None,
        typer.Option(
            "--for",
            min=0,
            metavar="SECONDS",
            help="Watch at most this long, then exit 0 and leave the job running. (default: until it ends)",
        ),
    ] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Show a live progress bar until the job ends (Ctrl-C stops watching, not the job)."""
    with _client(db) as client:
        job = client.get(job_id)
        with _sigint_event() as interrupted:
            note = f"watching job {job.id} ({job.kind}); Ctrl-C stops watching, not the job"
            errors.print(Text(note, style="dim"), soft_wrap=True)
            job = _follow(client, job, interrupted, for_s)
    if interrupted.is_set():
        note = f"stopped watching; job {job_id} goes on (it was not cancelled)"
        errors.print(Text(note, style="yellow"), soft_wrap=True)
        raise typer.Exit(130)
    if job.is_terminal:
        console.print(fmt.final_line(job), soft_wrap=True)
    else:
        line = Text.assemble(f"job {job.id} ({job.kind}) ", fmt.status_text(job.status))
        if job.progress_done is not None:
            line.append(f" {fmt.progress(job)}")
        line.append(f" — still going after watching {for_s:g} s (it was not cancelled)", style="dim")
        console.print(line, soft_wrap=True)


@contextlib.contextmanager
def _sigint_event() -> Iterator[threading.Event]:
    """An event SIGINT sets while the block runs.

    ``watch`` installs its own handler, as ``worker`` and ``serve`` do, instead of relying on
    KeyboardInterrupt: a job started in the background by a shell inherits SIGINT as ignored,
    and Python then never raises KeyboardInterrupt, so Ctrl-C (or ``kill -INT``) would not
    end it. Off the main thread (tests, embedding) no handler can be installed; nothing is.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handle(_signum: int, _frame: FrameType | None) -> None:
        event.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow(client: andon.Client, job: andon.Job, stop: threading.Event, for_s: float | None) -> andon.Job:
    """Poll the job ten times a second and draw its progress until it is terminal, ``stop``
    is set, or ``for_s`` seconds have passed; returns the job as last seen."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}", markup=False),
        TimeElapsedColumn(),
        console=console,
    )
    deadline = None if for_s is None else time.monotonic() + for_s
    with bar:
        task = bar.add_task("", total=None, note="")
        while True:
            styled = fmt.STATUS_STYLES.get(job.status, "")
            bar.update(
                task,
                description=f"{job.kind} [{styled}]{job.status.value}[/]",
                completed=job.progress_done or 0,
                total=job.progress_total,
                note=job.progress_message or "",
            )
            left_s = 0.1 if deadline is None else deadline - time.monotonic()
            if job.is_terminal or stop.is_set() or left_s <= 0:
                return job
            stop.wait(min(0.1, left_s))
            job = client.get(job.id)


# -- stopping ---------------------------------------------------------------------


@cli.command()
def cancel(
    job_ids: Annotated[
        list[str] | None, typer.Argument(metavar="ID", help="Jobs to cancel.", show_default=False)
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait until the work has stopped.")] = False,
    timeout: TimeoutOption = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Why (kept in the history).")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Cancel every active job matching the filters.")] = False,
    status: StatusOption = None,
    kind: KindOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before cancelling every active job.")] = False,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Stop the work at once, with no grace period (also brings forward a stop under way).",
        ),
    ] = False,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Cancel jobs: a queued job never starts, a running one is stopped.

    Give job ids, or --all (optionally with --status/--kind) for every active job. A handler
    that listens gets its grace period to stop by itself; --now stops it at once.
    """
    grace = 0.0 if now else None
    if all_jobs and job_ids:
        raise typer.BadParameter("give job ids or --all, not both", param_hint="'--all'")
    if not all_jobs and not job_ids:
        raise typer.BadParameter("give at least one job id, or --all", param_hint="'ID'")
    if not all_jobs and (status or kind):
        raise typer.BadParameter("--status and --kind select jobs only with --all", param_hint="'--status/--kind'")
    if all_jobs and not (status or kind or yes):
        typer.confirm("Cancel every active job?", abort=True)
    with _client(db) as client:
        if all_jobs:
            done = client.cancel_many(statuses=status or (), kinds=kind or (), message=message, grace=grace)
            if not done:
                console.print(Text("no active jobs matched; nothing to cancel", style="dim"))
            for job_id in done.withdrawn:
                console.print(fmt.withdrawn_line(job_id), soft_wrap=True)
            requested, failed = done.stopping, False
        else:
            requested, failed = _request_each(client, job_ids or [], message, grace)
        # All requests go out first, so with --wait the jobs stop in parallel, not one by one.
        for result in requested:
            if wait and not result.job.is_terminal:
                result = andon.CancelResult(client.wait_finished(result.job.id, timeout), result.outcome)
            console.print(fmt.cancel_line(result), soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _request_each(
    client: andon.Client, job_ids: list[str], message: str | None, grace: float | None
) -> tuple[list[andon.CancelResult], bool]:
    """Cancel each job; an error about one id is printed and the others still go ahead."""
    if len(job_ids) == 1:
        return [client.cancel(job_ids[0], message=message, grace=grace)], False
    requested, failed = [], False
    for job_id in job_ids:
        try:
            requested.append(client.cancel(job_id, message=message, grace=grace))
        except andon.AndonError as exc:
            _print_error(exc)
            failed = True
    return requested, failed


@cli.command()
def fail(
    job_id: JobId,
    retry: Annotated[bool, typer.Option("--retry/--no-retry", help="Let the kind's retry policy run it again.")] = True,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait until the job has ended.")] = False,
    timeout: TimeoutOption = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Why (kept in the history).")] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Force-fail a job: stop the work and record it as failed."""
    with _client(db) as client:
        result = client.fail(job_id, retry=retry, message=message, wait=wait, timeout=timeout)
    console.print(fmt.cancel_line(result), soft_wrap=True)


@cli.command()
def retry(
    job_id: JobId,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the new job id.")] = False,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Queue a new job with the kind and params of a failed or cancelled one."""
    with _client(db, app_ref, with_app=True) as client:
        job = client.retry(job_id)
    if quiet:
        typer.echo(job.id)
        return
    console.print(Text.assemble("submitted ", (job.id, "bold"), f"  {job.kind} (a retry of {job_id})"))


@cli.command()
def resume(job_id: JobId, db: DbOption = None, app_ref: AppOption = None) -> None:
    """Go on with a cancelled or failed job from its last checkpoint: the same job, a new
    attempt; nothing it stored before the checkpoint is done again."""
    with _client(db) as client:
        job = client.resume(job_id)
    console.print(fmt.resume_line(job), soft_wrap=True)


@cli.command()
def pause(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="The job kind (see `andon kinds`).", show_default=False)],
    now: Annotated[
        bool, typer.Option("--now", help="Also stop its running jobs; they go back to the queue to resume later.")
    ] = False,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Why (kept in the history).")] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Stop workers claiming a kind: its queued jobs wait until `andon unpause KIND`."""
    with _client(db, app_ref, with_app=True) as client:
        result = client.pause(kind, now=now, message=message)
    console.print(fmt.pause_line(result), soft_wrap=True)


@cli.command()
def unpause(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="A paused job kind.", show_default=False)],
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Let workers claim a paused kind again."""
    with _client(db) as client:
        changed = client.unpause(kind)
    if changed:
        console.print(Text.assemble(("unpaused", "bold"), f" {kind}"), soft_wrap=True)
    else:
        console.print(Text(f"{kind} was not paused; nothing changed", style="dim"), soft_wrap=True)


@cli.command()
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            show_default=False,
            help="Jobs finished longer ago than this: 30d, 12h, 90m.",
        ),
    ],
    statuses: Annotated[
        list[andon.JobStatus] | None,
        typer.Option(
            "--status",
            "-s",
            case_sensitive=False,
            help="Only jobs that ended so: succeeded, failed, cancelled (repeatable).",
        ),
    ] = None,
    kinds: KindOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Delete the jobs outright: no tombstone is left.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Change nothing; count what would be removed.")] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Jobs per transaction (other writers go on between).")
    ] = andon.DEFAULT_PRUNE_BATCH,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Prune old history: params, results, items and events of finished jobs go; a tombstone of
    each job stays (id, kind, state, times, who cancelled it and how it stopped) unless --purge."""
    older_than_s = parse_duration(older_than, "--older-than")
    with _client(db) as client:
        result = client.prune(
            older_than_s,
            statuses=statuses or [andon.JobStatus.SUCCEEDED, andon.JobStatus.FAILED, andon.JobStatus.CANCELLED],
            kinds=kinds or (),
            purge=purge,
            dry_run=dry_run,
            batch=batch,
        )
    console.print(fmt.prune_line(result, older_than), soft_wrap=True)


@cli.command("rm")
def remove(
    job_id: JobId,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, metavar="SECONDS", help="How long to wait for an active job to stop."),
    ] = 60.0,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Delete a job with its history and results (an active job is cancelled first)."""
    with _client(db) as client:
        client.delete(job_id, timeout=timeout)
    console.print(Text.assemble("deleted ", (job_id, "bold")))


# -- overview -----------------------------------------------------------------------


@cli.command()
def kinds(db: DbOption = None, app_ref: AppOption = None) -> None:
    """The app's job kinds, with how their jobs ended, how fast they stopped when cancelled,
    and which are paused."""
    with _client(db, app_ref, with_app=True) as client:
        assert client.app is not None  # _client loaded it
        stats, paused = client.kind_stats(), client.paused_kinds()
        if fmt.is_narrow(console, wide=160):
            console.print(fmt.kinds_list(client.app.kinds, stats, paused))
        else:
            fmt.print_table(console, fmt.kinds_table(client.app.kinds, stats, paused))


@cli.command()
def workers(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per worker and line.")] = False,
    db: DbOption = None,
) -> None:
    """The store's workers: alive, silent for N s, stopped or dead (found gone), where they
    run, their slots in use and the jobs they run now."""
    with _client(db) as client:
        found = client.workers()
    if as_json:
        for worker in found:
            typer.echo(json.dumps(fmt.worker_json(worker)))
        return
    if found:
        fmt.print_table(console, fmt.workers_table(found))
    console.print(fmt.workers_summary(found), soft_wrap=True)


@cli.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary database and print its URL.")] = False,
) -> None:
    """A short show of cancels on a temporary database (a few seconds)."""
    from andon.cli._demo import run_demo  # imports the example kinds, which only the demo needs

    run_demo(console, keep=keep)


cli.command("sample-data")(sample_data)
cli.add_typer(db_cli, name="db")
cli.add_typer(token_cli, name="token")
cli.add_typer(schedules_cli, name="schedules")


def main() -> None:
    """Entry point of the ``andon`` script."""
    cli()
