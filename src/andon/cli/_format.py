"""How the command line shows jobs, events, results and kinds (Rich renderables).

Everything that comes from a job (params, messages, tracebacks) goes into :class:`rich.text.Text`
objects, never into markup strings, so a ``[`` in a handler's message cannot break the output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

import andon

__all__ = [
    "cancel_line",
    "cancel_outcome",
    "children_table",
    "counts_text",
    "events_table",
    "final_line",
    "job_details",
    "job_tree",
    "jobs_table",
    "kinds_list",
    "kinds_table",
    "local_time",
    "node_label",
    "number",
    "pause_line",
    "print_table",
    "progress",
    "prune_line",
    "pruned_line",
    "result_line",
    "results_table",
    "resume_line",
    "seconds",
    "short_time",
    "status_text",
    "stop_detail",
    "stop_text",
    "worker_json",
    "worker_state_text",
    "workers_summary",
    "workers_table",
]

STATUS_STYLES: Final[Mapping[andon.JobStatus, str]] = {
    andon.JobStatus.QUEUED: "cyan",
    andon.JobStatus.RUNNING: "blue",
    andon.JobStatus.CANCELLING: "yellow",
    andon.JobStatus.SUCCEEDED: "green",
    andon.JobStatus.FAILED: "red",
    andon.JobStatus.CANCELLED: "magenta",
}

# How much force it took to stop the work: green needed none, red means the handler ignored
# every request (so `andon kinds` shows at a glance which handlers to fix).
STOP_STYLES: Final[Mapping[str, str]] = {
    andon.StopMethod.WITHDRAWN: "green",
    andon.StopMethod.COOPERATIVE: "green",
    andon.StopMethod.ASYNC: "green",
    andon.StopMethod.INJECTED: "yellow",
    andon.StopMethod.TERMINATED: "yellow",
    andon.StopMethod.KILLED: "red",
    andon.StopMethod.ABANDONED: "red",
    andon.StopMethod.WORKER_LOST: "red",
}


# -- layout -------------------------------------------------------------------

WIDE_COLUMNS: Final = 120
"""Below this terminal width, tables leave out their less important columns."""


def is_narrow(console: Console, wide: int = WIDE_COLUMNS) -> bool:
    return console.is_terminal and console.width < wide


def print_table(console: Console, table: RenderableType) -> None:
    """Print at the terminal's width; into a pipe or a file, wide enough that no column is
    squeezed to Rich's default of 80 (``andon ls | grep running`` should see whole rows)."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(file=console.file, width=max(console.width, 200), highlight=False).print(table)


# -- values -------------------------------------------------------------------


def status_text(status: andon.JobStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES.get(status, ""))


def status_cell(job: andon.Job, now: float) -> Text:
    """The status, and for a scheduled job (queued, not due yet) when it falls due."""
    text = status_text(job.status)
    if job.due_at is not None and job.due_at > now:
        text.append(f" due {short_time(job.due_at, now)}", style="cyan")
    return text


def stop_text(method: andon.StopMethod | str | None) -> Text:
    if method is None:
        return Text("-", style="dim")
    return Text(str(method), style=STOP_STYLES.get(str(method), ""))


def local_time(at: float | None, *, ms: bool = False) -> str:
    """``at`` (seconds since the epoch) as local time, ``-`` when unset."""
    if at is None:
        return "-"
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return f"{text}.{int(at * 1000) % 1000:03d}" if ms else text


def short_time(at: float, now: float) -> str:
    """Local time, as short as it can be without being ambiguous near ``now``."""
    moment, today = time.localtime(at), time.localtime(now)
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M:%S", moment)
    if moment.tm_year == today.tm_year:
        return time.strftime("%m-%d %H:%M", moment)
    return time.strftime("%Y-%m-%d", moment)


def seconds(value: float | None) -> str:
    """A duration for people: ``85 ms``, ``4.2 s``, ``3 min 07 s``, ``2 h 05 min``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def number(value: float) -> str:
    """``5.0`` as ``5``, ``0.25`` as ``0.25``."""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def as_json(value: Any) -> str:  # Any: a JSON value from the store
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def progress(job: andon.Job) -> str:
    if job.progress_done is None:
        return "-"
    done = number(job.progress_done)
    return done if job.progress_total is None else f"{done}/{number(job.progress_total)}"


def duration(job: andon.Job, now: float) -> float | None:
    """Seconds the current (or last) attempt ran; ``None`` if it never started."""
    if job.started_at is None:
        return None
    end = job.finished_at if job.finished_at is not None else now
    return max(0.0, end - job.started_at) if job.status is not andon.JobStatus.QUEUED else None


def stop_detail(cancel: andon.CancelInfo) -> str:
    """``stopped (cooperative) 85 ms after the request``, or what is still pending."""
    if cancel.stop_method is None:
        return "stop requested, the work has not stopped yet"
    if cancel.stop_method is andon.StopMethod.WITHDRAWN:
        return "withdrawn before it started"
    if cancel.stop_method is andon.StopMethod.WORKER_LOST:
        return f"its worker was lost; settled {seconds(cancel.stop_seconds)} after the request, when its lease ran out"
    return f"stopped ({cancel.stop_method.value}) {seconds(cancel.stop_seconds)} after the request"


def cancel_summary(job: andon.Job) -> Text:
    """The cancel column of ``andon ls``: reason and how the work stopped."""
    cancel = job.cancel
    if cancel is None:
        return Text("")
    text = Text(cancel.reason.value)
    if cancel.stop_method is not None:
        text.append(" → ")
        text.append_text(stop_text(cancel.stop_method))
    elif job.status.is_active:
        text.append(" (stopping)", style="yellow")
    return text


# -- one-line summaries -------------------------------------------------------


def cancel_outcome(result: andon.CancelResult) -> tuple[str, str, str]:
    """What a cancel or force-fail did, as ``(label, detail, style)``."""
    job, outcome = result.job, result.outcome
    if outcome is andon.CancelOutcome.WITHDRAWN:
        label = "failed" if job.status is andon.JobStatus.FAILED else "withdrawn"
        return label, "it was still queued and will never start", "green"
    if outcome is andon.CancelOutcome.ALREADY:
        return f"already {job.status.value}", stop_detail(job.cancel) if job.cancel else "", "dim"
    if job.status is andon.JobStatus.CANCELLING:
        forced = job.cancel is not None and job.cancel.reason is andon.CancelReason.FORCED
        if outcome is andon.CancelOutcome.ESCALATED:
            return "failing", "the force-fail replaced the earlier cancel; the work is stopping", "yellow"
        label = "failing" if forced else "cancelling"
        if outcome is andon.CancelOutcome.HURRIED:
            return label, "the stop under way was brought forward; the work is being stopped now", "yellow"
        if job.cancel is not None and job.cancel.grace_s == 0:
            return label, "stop requested with no grace; the work is being stopped now", "yellow"
        return label, "stop requested; the work is stopping", "yellow"
    if job.status is andon.JobStatus.QUEUED:
        return "requeued", "force-failed; its retry policy allows another attempt", "cyan"
    if job.cancel is not None and job.cancel.stop_method is not None:
        detail = stop_detail(job.cancel)
    else:
        detail = "it finished before it saw the cancel"
    return job.status.value, detail, STATUS_STYLES.get(job.status, "")


def cancel_line(result: andon.CancelResult) -> Text:
    """``cancelled   <id>  count  stopped (cooperative) 85 ms after the request``."""
    label, detail, style = cancel_outcome(result)
    text = Text(f"{label:<11}", style=style)
    text.append(f" {result.job.id}  {result.job.kind}")
    if detail:
        text.append(f"  {detail}")
    return text


def withdrawn_line(job_id: str) -> Text:
    """``withdrawn   <id>  it was still queued and will never start`` (a bulk cancel names
    withdrawn jobs by id only)."""
    text = Text(f"{'withdrawn':<11}", style="green")
    text.append(f" {job_id}  it was still queued and will never start")
    return text


def final_line(job: andon.Job, *, with_id: bool = True) -> Text:
    """How a job ended, e.g. ``cancelled after 1.2 s — cancel (user): stopped (cooperative) 85 ms after...``."""
    text = Text(f"job {job.id} ({job.kind}) " if with_id else "")
    text.append_text(status_text(job.status))
    ran = duration(job, time.time())
    if ran is not None:
        text.append(f" after {seconds(ran)}")
    if job.status is andon.JobStatus.FAILED and job.error is not None:
        text.append(f": {job.error.type}: {job.error.message}", style="red")
    if job.cancel is not None:
        text.append(f" — cancel ({job.cancel.reason.value}): {stop_detail(job.cancel)}")
    if job.items_count:
        text.append(f" — {job.items_count} partial result(s)")
    return text


def result_line(item: andon.ResultItem) -> str:
    """One partial result as one JSON object (JSON Lines)."""
    record = {"seq": item.seq, "attempt": item.attempt, "at": item.at, "data": item.data}
    return json.dumps(record, ensure_ascii=False)


# -- tables -------------------------------------------------------------------


def jobs_table(jobs: Iterable[andon.Job], *, compact: bool = False, now: float | None = None) -> Table:
    """The history table of ``andon ls`` (and of the demo), newest first as given.

    ``compact`` keeps only what fits 80 columns next to a full job id: kind, status,
    progress and cancel (ids are never shortened: they are what you copy into the next command).
    """
    now = time.time() if now is None else now
    table = _table()
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("kind")
    table.add_column("status", no_wrap=True)
    table.add_column("progress", justify="right")
    if not compact:
        table.add_column("items", justify="right")
        table.add_column("attempt", justify="right")
        table.add_column("created", no_wrap=True)
        table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("cancel")
    if not compact:
        table.add_column("error")
    for job in jobs:
        cells: list[Text | str] = [Text(job.id), Text(job.kind), status_cell(job, now), progress(job)]
        if not compact:
            ran = duration(job, now)
            cells += [str(job.items_count), f"{job.attempt}/{job.max_attempts}", short_time(job.created_at, now)]
            cells.append(seconds(ran) if ran is not None else "")
        cells.append(cancel_summary(job))
        if not compact:
            cells.append(Text(job.error.type if job.error else "", style="red"))
        table.add_row(*cells)
    return table


def _table(**options: Any) -> Table:  # Any: passed through to rich.table.Table
    """A borderless table with one space between columns."""
    return Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        **options,
    )


def job_details(job: andon.Job, *, now: float | None = None) -> RenderableType:
    """Every field of one job, the cancel lifecycle included, for ``andon show``."""
    now = time.time() if now is None else now
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows: list[tuple[str, Text | str]] = [
        ("id", job.id),
        ("kind", job.kind),
        ("status", status_text(job.status)),
        ("params", as_json(job.params)),
        ("priority", str(job.priority)),
        ("attempt", f"{job.attempt} of at most {job.max_attempts} ({job.failures} failed)"),
        ("retry backoff", seconds(job.retry_backoff_s) if job.max_attempts > 1 else "-"),
        ("timeout", seconds(job.timeout_s) if job.timeout_s is not None else "none"),
        ("created", local_time(job.created_at, ms=True)),
        ("due", _due_detail(job, now)),
        ("started", local_time(job.started_at, ms=True)),
        ("finished", local_time(job.finished_at, ms=True)),
        ("duration", seconds(duration(job, now))),
        ("worker", job.worker_id or "-"),
        ("lease expires", local_time(job.lease_expires_at, ms=True)),
        ("progress", _progress_detail(job)),
        ("partial results", str(job.items_count)),
        ("result", as_json(job.result) if job.status is andon.JobStatus.SUCCEEDED else "-"),
    ]
    if job.retry_of:
        rows.append(("retry of", job.retry_of))
    rows.extend(_tree_rows(job))
    if job.error is not None:
        rows.append(("error", Text(f"{job.error.type}: {job.error.message}", style="red")))
    if job.cancel is not None:
        rows.extend(_cancel_rows(job.cancel))
    if job.checkpoint is not None:
        rows.extend(_checkpoint_rows(job))
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else Text(value))
    if job.error is not None and job.error.traceback:
        return Group(grid, Text(""), Text(job.error.traceback.rstrip(), style="dim"))
    return grid


def _due_detail(job: andon.Job, now: float) -> str:
    """When a queued job may start: scheduled (ahead of now) or due already; ``-`` otherwise."""
    if job.due_at is None:
        return "-"
    if job.due_at > now:
        return f"{local_time(job.due_at, ms=True)} (scheduled: in {seconds(job.due_at - now)})"
    return f"{local_time(job.due_at, ms=True)} (due: it starts when a worker is free)"


def _progress_detail(job: andon.Job) -> str:
    text = progress(job)
    return f"{text}  {job.progress_message}" if job.progress_message else text


def _checkpoint_rows(job: andon.Job) -> list[tuple[str, Text | str]]:
    assert job.checkpoint is not None
    checkpoint = job.checkpoint
    where = f"attempt {checkpoint.attempt}, after {checkpoint.items} item(s), at {local_time(checkpoint.at, ms=True)}"
    rows: list[tuple[str, Text | str]] = [("checkpoint", where)]
    if job.resume:
        rows.append(("next attempt", "goes on from the checkpoint"))
    elif andon.Action.RESUME in andon.allowed_actions(job):
        rows.append(("next attempt", Text(f"andon resume {job.id} goes on from the checkpoint", style="dim")))
    return rows


def resume_line(job: andon.Job) -> Text:
    """``resumed <id>  count  from attempt 1's checkpoint (42 items kept); queued``."""
    text = Text.assemble(("resumed", "bold"), f" {job.id}  {job.kind}")
    if job.checkpoint is not None:
        text.append(f"  from attempt {job.checkpoint.attempt}'s checkpoint ({job.checkpoint.items} item(s) kept); ")
    return text + status_text(job.status)


def pruned_line(pruned_at: float) -> Text:
    """What ``andon show`` says of a tombstone instead of its history."""
    return Text(
        f"pruned on {local_time(pruned_at)}, history removed (params, results, items and events);"
        " the fields above, its cancel record included, are what is kept",
        style="yellow",
    )


def prune_line(result: andon.PruneResult, older_than: str) -> Text:
    """``pruned 1200 job(s) finished more than 30d ago: 3400 item(s), 9000 event(s) removed (12 batches)``."""
    verb = "would prune" if result.dry_run else "pruned"
    if result.purged:
        verb = "would delete" if result.dry_run else "deleted"
    text = Text.assemble((verb, "bold"), f" {result.jobs} job(s) finished more than {older_than} ago: ")
    text.append(f"{result.items} item(s) and {result.events} event(s)")
    text.append(" would go" if result.dry_run else " removed")
    if not result.dry_run:
        text.append(f" in {result.batches} batch(es)", style="dim")
        if not result.purged and result.jobs:
            text.append("; tombstones kept (andon show ID)", style="dim")
    return text


def pause_line(result: andon.PauseResult) -> Text:
    """``paused count; 3 running job(s) asked to stop: they go back to the queue``."""
    if not result.changed:
        return Text(f"{result.kind} was paused already; nothing changed", style="dim")
    text = Text.assemble(("paused", "bold"), f" {result.kind}: no worker claims it until `andon unpause {result.kind}`")
    if result.stopping:
        text.append(f"; {len(result.stopping)} running job(s) asked to stop, to go on from their checkpoints then")
    return text


def _cancel_rows(cancel: andon.CancelInfo) -> list[tuple[str, Text | str]]:
    rows: list[tuple[str, Text | str]] = [
        ("cancel requested", local_time(cancel.requested_at, ms=True)),
        ("cancel reason", cancel.reason.value),
        ("cancel by", cancel.by or "-"),
        ("cancel message", cancel.message or "-"),
    ]
    # The stored flag is set on every cancel (it defaults to yes), but only a force-fail
    # reads it: any other cancel ends the job for good, so "retry yes" there would be untrue.
    if cancel.reason is andon.CancelReason.FORCED:
        rows.append(("cancel retry", "yes, as the kind's retry policy allows" if cancel.retry else "no"))
    rows += [
        ("acknowledged", local_time(cancel.acknowledged_at, ms=True)),
        ("stopped", local_time(cancel.stopped_at, ms=True)),
        ("stop method", stop_text(cancel.stop_method)),
        ("request → stop", seconds(cancel.stop_seconds)),
    ]
    if cancel.origin is not None:
        rows.insert(2, ("cancel origin", f"{cancel.origin} (its cancel reached this job)"))
    return rows


def _tree_rows(job: andon.Job) -> list[tuple[str, Text | str]]:
    """Where the job stands in a tree; nothing for a top-level job."""
    rows: list[tuple[str, Text | str]] = []
    if job.parent_id is not None:
        rows.append(("parent", job.parent_id))
        if job.root_id is not None and job.root_id != job.parent_id:
            rows.append(("root", job.root_id))
        ends = "left running" if job.detached else "cancelled (parent_ended)"
        rows.append(("if its parent ends first", ends))
        if job.fail_parent:
            rows.append(("fail parent", "yes: its failure fails its parent and stops its siblings"))
    if job.key is not None:
        rows.append(("key", job.key))
    if job.awaiting is not None:
        rows.append(
            ("awaiting", Text(f"its own work stopped; {job.awaiting.value} once its descendants have", "yellow"))
        )
    return rows


# -- trees --------------------------------------------------------------------


def counts_text(counts: Mapping[andon.JobStatus, int]) -> Text:
    """``5 (1 running, 4 queued)``, states in lifecycle order, each in its colour."""
    total = sum(counts.values())
    text = Text(str(total))
    parts = [(status, counts[status]) for status in andon.JobStatus if counts.get(status)]
    if parts:
        text.append(" (")
        for i, (status, n) in enumerate(parts):
            text.append(", " if i else "")
            text.append(f"{n} {status.value}", style=STATUS_STYLES.get(status, ""))
        text.append(")")
    return text


def node_label(job: andon.Job) -> Text:
    """One job in a tree: ``count  cancelled  parent_cancelled → cooperative  <id>``."""
    text = Text(job.kind, style="bold")
    text.append("  ")
    text.append_text(status_text(job.status))
    if job.cancel is not None:
        text.append("  ")
        text.append_text(cancel_summary(job))
    if job.awaiting is not None:
        text.append("  waits for its descendants", style="yellow")
    text.append(f"  {job.id}", style="dim")
    return text


def children_table(children: Sequence[andon.Job], counts: Mapping[str, Mapping[andon.JobStatus, int]]) -> Table:
    """The first page of a job's children in ``andon show``, newest first (as ``andon ls --parent``)."""
    table = _table(title="children", title_justify="left", title_style="bold")
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("kind")
    table.add_column("status", no_wrap=True)
    table.add_column("cancel")
    table.add_column("children", justify="right")
    for job in children:
        below = counts.get(job.id)
        table.add_row(
            Text(job.id),
            Text(job.kind),
            status_text(job.status),
            cancel_summary(job),
            Text(str(sum(below.values()))) if below else Text("-", style="dim"),
        )
    return table


def job_tree(
    top: andon.Job,
    descendants: Sequence[andon.Job],
    child_counts: Mapping[str, Mapping[andon.JobStatus, int]],
) -> Tree:
    """``top`` and the ``descendants`` read of it, children under their parent, oldest first.

    A node whose children were not all read (``child_counts`` has more) ends with
    ``... N more`` at its children's indentation, so a capped tree says where it was cut.
    """
    by_parent: dict[str | None, list[andon.Job]] = {}
    for job in sorted(descendants, key=lambda j: j.id):
        by_parent.setdefault(job.parent_id, []).append(job)
    tree = Tree(node_label(top), guide_style="dim")
    stack: list[tuple[andon.Job, Tree]] = [(top, tree)]
    while stack:
        job, node = stack.pop()
        shown = by_parent.get(job.id, [])
        for child in shown:
            stack.append((child, node.add(node_label(child))))
        hidden = sum(child_counts.get(job.id, {}).values()) - len(shown)
        if hidden > 0:
            node.add(Text(f"... {hidden} more", style="dim"))
    return tree


def events_table(events: Sequence[andon.JobEvent]) -> Table:
    """A job's history, oldest first."""
    table = _table(title="events", title_justify="left", title_style="bold")
    for name in ("seq", "at", "event", "transition", "attempt", "actor", "reason", "message"):
        table.add_column(name, justify="right" if name in ("seq", "attempt") else "left")
    for event in events:
        transition = Text("")
        if event.from_status is not None and event.to_status is not None and event.from_status != event.to_status:
            transition = status_text(event.from_status) + Text(" → ") + status_text(event.to_status)
        table.add_row(
            str(event.seq),
            local_time(event.at, ms=True),
            Text(event.type),
            transition,
            str(event.attempt),
            Text(event.actor or ""),
            Text(event.reason or ""),
            Text(event.message or ""),
        )
    return table


def results_table(items: Sequence[andon.ResultItem]) -> Table:
    table = _table()
    table.add_column("seq", justify="right")
    table.add_column("attempt", justify="right")
    table.add_column("at", no_wrap=True)
    table.add_column("data")
    for item in items:
        table.add_row(str(item.seq), str(item.attempt), local_time(item.at, ms=True), Text(as_json(item.data)))
    return table


def kinds_table(
    kinds: Sequence[andon.JobKind], stats: Sequence[andon.KindStats], paused: Sequence[andon.PausedKind] = ()
) -> Table:
    """The app's kinds joined with their history: a handler that ignores cancels stands out,
    and so does a paused kind."""
    by_kind = {s.kind: s for s in stats}
    table = _table()
    for name in ("kind", "isolation", "timeout", "grace", "retry", "limits", "params", "description", "jobs"):
        table.add_column(name, no_wrap=name in ("kind", "isolation", "timeout", "grace"))
    table.add_column("stops", justify="right")
    table.add_column("stop time\nmedian / p99 / max", justify="right")
    table.add_column("stop methods")
    pauses = {p.kind: p for p in paused}
    for spec in kinds:
        title, isolation, timeout, grace, retry, params, description = _settings_cells(spec)
        stats_of = by_kind.get(spec.kind)
        table.add_row(
            _with_pause(title, pauses.get(spec.kind)),
            isolation,
            timeout,
            grace,
            retry,
            limits_text(spec, stats_of),
            params,
            description,
            *_stats_cells(stats_of),
        )
    for kind in _unregistered(kinds, by_kind):
        table.add_row(
            Text(kind, style="bold"),
            Text("not in this app", style="dim"),
            *[""] * 3,
            limits_text(None, by_kind[kind]),
            *[""] * 2,
            *_stats_cells(by_kind[kind]),
        )
    return table


def kinds_list(
    kinds: Sequence[andon.JobKind], stats: Sequence[andon.KindStats], paused: Sequence[andon.PausedKind] = ()
) -> RenderableType:
    """The same as :func:`kinds_table`, one block per kind, for narrow terminals."""
    by_kind = {s.kind: s for s in stats}
    pauses = {p.kind: p for p in paused}
    blocks: list[RenderableType] = []
    for spec in kinds:
        name, isolation, timeout, grace, retry, params, description = _settings_cells(spec)
        head = name + Text(f"  {isolation} · timeout {timeout} · grace {grace} · retry {retry}")
        limits = limits_text(spec, by_kind.get(spec.kind))
        if limits.plain != "none":
            head += Text(" · limits ") + Text(", ").join(limits.split("\n"))
        if spec.kind in pauses:
            head = _with_pause(head, pauses[spec.kind])
        blocks += [head, Text(f"  {description}"), Text("  params: " + params.plain.replace("\n", ", "))]
        blocks += [_stats_block(by_kind.get(spec.kind)), Text("")]
    for kind in _unregistered(kinds, by_kind):
        blocks += [Text(kind, style="bold") + Text("  not in this app", style="dim"), _stats_block(by_kind[kind])]
        blocks.append(Text(""))
    return Group(*blocks)


def limits_text(spec: andon.JobKind | None, stats: andon.KindStats | None) -> Text:
    """The limits in force (as the store has them) with their use now, e.g. ``max 2 running
    (1 now)`` and ``5 starts / 1 s (3 in window)``; the app's own while no worker has stored them."""
    max_running = stats.max_running if stats is not None else None
    rate = stats.rate if stats is not None else None
    stored = max_running is not None or rate is not None
    if not stored and spec is not None:
        max_running, rate = spec.max_running, spec.rate
    lines = []
    if max_running is not None:
        now = f" ({stats.running_now} now)" if stats is not None and stored else ""
        lines.append(Text(f"max {max_running} running{now}"))
    if rate is not None:
        used = stats.starts_in_window if stats is not None and stored else None
        window = f" ({used} in window)" if used is not None else ""
        lines.append(Text(f"{rate[0]} starts / {seconds(rate[1])}{window}"))
    if not lines:
        return Text("none", style="dim")
    text = Text("\n").join(lines)
    if not stored:
        text += Text("\n(not stored yet: no worker of this app has started)", style="dim")
    return text


def _with_pause(name: Text, paused: andon.PausedKind | None) -> Text:
    """The kind's name, and while it is paused: since when, by whom and why."""
    if paused is None:
        return name
    note = f"paused since {local_time(paused.paused_at)}" + (f" by {paused.by}" if paused.by else "")
    note += f": {paused.message}" if paused.message else ""
    return name + Text("\n") + Text(note, style="yellow")


def _unregistered(kinds: Sequence[andon.JobKind], by_kind: Mapping[str, andon.KindStats]) -> list[str]:
    """Kinds with jobs in the store that this app does not know (another app's, or renamed)."""
    return sorted(set(by_kind) - {k.kind for k in kinds})


def _settings_cells(spec: andon.JobKind) -> tuple[Text, str, str, str, str, Text, Text]:
    return (
        Text(spec.kind, style="bold"),
        spec.isolation.value,
        seconds(spec.timeout_s) if spec.timeout_s is not None else "none",
        seconds(spec.grace_s),
        _retry(spec.retry),
        Text(params_summary(spec.params_schema())),
        Text(spec.description.split("\n\n")[0].replace("\n", " ")),
    )


def _stats_block(stats: andon.KindStats | None) -> Text:
    if stats is None:
        return Text("  no jobs yet", style="dim")
    jobs, stops, times, methods = _stats_cells(stats)
    text = Text("  jobs: ") + Text(", ").join(jobs.split("\n"))
    if stats.stops:
        text += Text(f" · {stops} stopped by a cancel, median / p99 / max {times}: ")
        text += Text(", ").join(methods.split("\n"))
    return text


def _retry(retry: andon.Retry) -> str:
    if retry.max_attempts <= 1:
        return "no"
    return f"{retry.max_attempts} attempts, backoff {seconds(retry.backoff_s)}"


def _stats_cells(stats: andon.KindStats | None) -> tuple[Text, str, str, Text]:
    if stats is None:
        return Text("-", style="dim"), "-", "-", Text("-", style="dim")
    jobs = Text("\n").join(
        status_text(andon.JobStatus(status)) + Text(f" {count}")
        for status, count in sorted(stats.counts.items(), key=lambda pair: _STATUS_ORDER.get(pair[0], 99))
    )
    times = "-"
    if stats.stops:
        times = " / ".join(seconds(value) for value in (stats.stop_p50_s, stats.stop_p99_s, stats.stop_max_s))
    methods = Text("\n").join(
        stop_text(method) + Text(f" {count}") for method, count in sorted(stats.stop_methods.items())
    )
    if stats.needs_force:
        methods += Text("\n") + NEEDS_FORCE_TEXT
    return jobs, str(stats.stops), times, methods or Text("-", style="dim")


NEEDS_FORCE_TEXT: Final = Text("needs force: its handler ignores Cancel (call ctx.check())", style="bold red")
"""The mark of a kind most of whose stops were forced (:attr:`andon.StopStats.needs_force`)."""


_STATUS_ORDER: Final = {status.value: index for index, status in enumerate(andon.JobStatus)}


def params_summary(schema: Mapping[str, Any]) -> str:  # Any: a JSON schema document
    """One line per param from a kind's JSON schema: ``n: integer = 10``."""
    properties: Mapping[str, Any] = schema.get("properties", {})  # Any: JSON schema values
    required = set(schema.get("required", []))
    lines = []
    for name, prop in properties.items():
        line = f"{name}: {_schema_type(prop)}"
        if name not in required and "default" in prop:
            line += f" = {as_json(prop['default'])}"
        lines.append(line)
    return "\n".join(lines) or "-"


def _schema_type(prop: Mapping[str, Any]) -> str:  # Any: JSON schema values
    if "type" in prop:
        return str(prop["type"])
    if "anyOf" in prop:
        return " | ".join(_schema_type(option) for option in prop["anyOf"])
    return "any"


# -- workers ------------------------------------------------------------------------

WORKER_STYLES: Final[Mapping[andon.WorkerStatus, str]] = {
    andon.WorkerStatus.ALIVE: "green",
    andon.WorkerStatus.SILENT: "yellow",
    andon.WorkerStatus.STOPPED: "dim",
    andon.WorkerStatus.DEAD: "red",
}


def worker_state_text(worker: andon.WorkerInfo) -> Text:
    """``alive``, ``silent for 42.0 s``, ``stopped``, ``dead``: what the registry's facts say."""
    label = worker.status.value
    if worker.silent_s is not None:
        label = f"silent for {seconds(worker.silent_s)}"
        if worker.silent_s >= worker.lease_s:
            label += " (past its lease)"
    return Text(label, style=WORKER_STYLES[worker.status])


def workers_table(workers: Sequence[andon.WorkerInfo], *, now: float | None = None) -> Table:
    """The store's workers, newest first: state, where, what they claim, slots and jobs."""
    now = time.time() if now is None else now
    table = _table()
    for name in ("worker", "state", "host", "pid", "slots", "running jobs", "kinds", "started", "heartbeat", "ended"):
        table.add_column(name, justify="right" if name in ("pid", "slots") else "left")
    for worker in workers:
        ended = "-"
        if worker.stopped_at is not None:
            ended = short_time(worker.stopped_at, now)
            if worker.end_message:
                ended += f": {worker.end_message}"
        table.add_row(
            Text(worker.id, style="bold"),
            worker_state_text(worker),
            Text(worker.host),
            str(worker.pid),
            f"{worker.slots_in_use} / {worker.slots}",
            Text("\n".join(worker.job_ids) or ("-" if not worker.running else f"{worker.running} (not yours)")),
            Text(", ".join(worker.kinds)),
            short_time(worker.started_at, now),
            f"{seconds(worker.heartbeat_age_s)} ago",
            Text(ended, style="red" if worker.status is andon.WorkerStatus.DEAD else ""),
        )
    return table


def workers_summary(workers: Sequence[andon.WorkerInfo]) -> Text:
    """One line: how many are alive, with how many slots, and how many of those are in use."""
    alive = [w for w in workers if w.is_alive]
    if not alive:
        return Text("no worker is alive: queued jobs wait until an andon worker starts", style="yellow")
    slots = sum(w.slots for w in alive)
    used = sum(w.slots_in_use for w in alive)
    text = Text(f"{len(alive)} alive, {used} of {slots} slots in use")
    silent = sum(w.status is andon.WorkerStatus.SILENT for w in workers)
    if silent:
        text.append(f", {silent} silent", style="yellow")
    return text


def worker_json(worker: andon.WorkerInfo) -> dict[str, object]:
    """A worker as ``andon workers --json`` prints it (the API's field names)."""
    return {
        "id": worker.id,
        "status": worker.status.value,
        "silent_s": worker.silent_s,
        "host": worker.host,
        "pid": worker.pid,
        "version": worker.version,
        "kinds": list(worker.kinds),
        "slots": worker.slots,
        "slots_in_use": worker.slots_in_use,
        "running": worker.running,
        "job_ids": list(worker.job_ids),
        "lease_s": worker.lease_s,
        "started_at": worker.started_at,
        "heartbeat_at": worker.heartbeat_at,
        "heartbeat_age_s": worker.heartbeat_age_s,
        "stopped_at": worker.stopped_at,
        "end_message": worker.end_message,
    }
