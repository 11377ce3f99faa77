"""``andon db``: create or upgrade the database's schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

import andon

__all__ = ["db_cli"]

console = Console(highlight=False)

db_cli = typer.Typer(
    name="db",
    no_args_is_help=True,
    add_completion=False,
    help="The database's schema: create it or upgrade it to this andon's version.",
)


@db_cli.command()
def upgrade(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            show_default=False,
            help="Database URL. (default: $ANDON_DATABASE_URL, else sqlite:///andon.db)",
        ),
    ] = None,
) -> None:
    """Create or upgrade andon's tables. Idempotent; safe to run from many machines at once."""
    done = andon.upgrade_database(db)
    if done.changed:
        line = Text.assemble(f"{done.url}: schema upgraded from version {done.before} to ", (str(done.after), "bold"))
    else:
        line = Text(f"{done.url}: schema already at version {done.after}; nothing to do")
    console.print(line, soft_wrap=True)
