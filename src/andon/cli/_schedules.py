"""``andon schedules``: list, add, remove, pause, resume and trigger periodic jobs, and read
what became of their ticks (straight on the database)."""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import andon
from andon.cli._input import DbOption, load_app, parse_params

__all__ = ["schedules_cli"]

console = Console(highlight=False)

_DEFAULT_APP: Final = "andon.examples:app"
_ACTOR: Final = "cli"

schedules_cli = typer.Typer(
    name="schedules",
    no_args_is_help=False,
    invoke_without_command=True,
    add_completion=False,
    help="Periodic jobs: declared with @app.periodic, or added here; fired by the worker that leads.",
)

AppOption = Annotated[
    str | None,
    typer.Option("--app", metavar="MODULE:ATTR", envvar="ANDON_APP", show_default=False, help="The andon.App."),
]
NameArgument = Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="The schedule's name.")]


def _client(db: str | None, app_ref: str | None = None, *, with_app: bool = False) -> andon.Client:
    return andon.connect(db, load_app(app_ref or _DEFAULT_APP) if with_app else None, actor=_ACTOR)


@schedules_cli.callback()
def main(ctx: typer.Context, db: DbOption = None) -> None:
    """List the schedules when no command is given."""
    if ctx.invoked_subcommand is None:
        list_schedules(db)


@schedules_cli.command("list")
def list_schedules(db: DbOption = None) -> None:
    """Every schedule: timing, next tick, last outcome, and which worker leads."""
    with _client(db) as client:
        schedules, lease = client.list_schedules(ticks=1), client.scheduler_lease()
    if not schedules:
        console.print(Text("no schedules: declare one with @app.periodic, or andon schedules add", style="dim"))
    else:
        table = Table("name", "kind", "timing", "overlap", "next tick", "last tick", "source", box=None)
        for schedule in schedules:
            last = schedule.last_ticks[0] if schedule.last_ticks else None
            table.add_row(
                schedule.name,
                schedule.spec.kind,
                schedule.spec.timing,
                schedule.spec.overlap.value,
                f"paused by {schedule.paused_by or '?'}" if schedule.is_paused else _when(schedule.next_at),
                f"{last.outcome.value} {_when(last.tick_at)}" if last is not None else "-",
                schedule.source.value,
                style="dim" if schedule.is_paused else None,
            )
        console.print(table)
    leader = f"leader: {lease.holder} (since {_when(lease.since)})" if lease else "leader: none (no worker's scheduler)"
    console.print(Text(leader, style="dim"), soft_wrap=True)


@schedules_cli.command()
def add(
    name: NameArgument,
    kind: Annotated[str, typer.Argument(metavar="KIND", show_default=False, help="The job kind.")],
    params: Annotated[
        list[str] | None, typer.Argument(metavar="KEY=VALUE", help="Params; values are read as JSON when they parse.")
    ] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="A cron expression, e.g. '*/5 * * * *'.")] = None,
    every: Annotated[float | None, typer.Option("--every", metavar="SECONDS", help="A fixed interval.")] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA time zone of --cron.")] = "UTC",
    overlap: Annotated[
        andon.OnConflict, typer.Option("--overlap", case_sensitive=False, help="A tick while its job is active.")
    ] = andon.OnConflict.SKIP,
    catch_up: Annotated[
        andon.CatchUp, typer.Option("--catch-up", case_sensitive=False, help="Ticks missed while no scheduler ran.")
    ] = andon.CatchUp.LATEST,
    priority: Annotated[int, typer.Option("--priority")] = 0,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, metavar="SECONDS")] = None,
    db: DbOption = None,
    app_ref: AppOption = None,
) -> None:
    """Add a runtime schedule (give --cron or --every)."""
    with _client(db, app_ref, with_app=True) as client:
        schedule = client.add_schedule(
            name,
            kind,
            parse_params(params or []),
            cron=cron,
            every=every,
            timezone=timezone,
            overlap=overlap,
            catch_up=catch_up,
            priority=priority,
            timeout=timeout,
        )
    console.print(
        Text.assemble("added ", (schedule.name, "bold"), f"  {schedule.spec.timing}, next {_when(schedule.next_at)}"),
        soft_wrap=True,
    )


@schedules_cli.command("rm")
def remove(name: NameArgument, db: DbOption = None) -> None:
    """Remove a runtime schedule (its ticks stay in history)."""
    with _client(db) as client:
        client.remove_schedule(name)
    console.print(Text.assemble("removed ", (name, "bold")), soft_wrap=True)


@schedules_cli.command()
def pause(name: NameArgument, db: DbOption = None) -> None:
    """Stop a schedule's ticks until it is resumed."""
    with _client(db) as client:
        client.pause_schedule(name)
    console.print(Text.assemble(("paused", "bold"), f" {name}"), soft_wrap=True)


@schedules_cli.command()
def resume(name: NameArgument, db: DbOption = None) -> None:
    """Tick again, from the first tick after now."""
    with _client(db) as client:
        schedule = client.resume_schedule(name)
    console.print(Text.assemble(("resumed", "bold"), f" {name}, next {_when(schedule.next_at)}"), soft_wrap=True)


@schedules_cli.command()
def trigger(name: NameArgument, db: DbOption = None, app_ref: AppOption = None) -> None:
    """Make the schedule's job now (through its overlap policy)."""
    with _client(db, app_ref, with_app=True) as client:
        tick = client.trigger_schedule(name)
    console.print(_tick_line(tick), soft_wrap=True)


@schedules_cli.command()
def ticks(
    name: NameArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    db: DbOption = None,
) -> None:
    """What became of a schedule's ticks, newest first: the job each made, or why none."""
    with _client(db) as client:
        found = client.schedule_ticks(name, limit=limit)
    for tick in found:
        if as_json:
            typer.echo(json.dumps({**_tick_json(tick)}))
        else:
            console.print(_tick_line(tick), soft_wrap=True)


def _tick_json(tick: andon.Tick) -> dict[str, object]:
    return {
        "schedule": tick.schedule,
        "tick_at": tick.tick_at,
        "at": tick.at,
        "outcome": tick.outcome.value,
        "job_id": tick.job_id,
        "by": tick.by,
        "message": tick.message,
    }


def _tick_line(tick: andon.Tick) -> Text:
    line = Text.assemble(_when(tick.tick_at), "  ", (tick.outcome.value, "bold"))
    if tick.job_id:
        line.append(f"  {tick.job_id}")
    if tick.message:
        line.append(f"  {tick.message}", style="dim")
    return line


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
