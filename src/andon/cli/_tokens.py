"""``andon token``: create, list and revoke API tokens (straight on the database)."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import andon
from andon.cli._input import DbOption

__all__ = ["token_cli"]

console = Console(highlight=False)

token_cli = typer.Typer(
    name="token",
    no_args_is_help=True,
    add_completion=False,
    help="API tokens with roles: admin (everything) or user (only their own jobs).",
)


@token_cli.command()
def create(
    name: Annotated[str, typer.Option("--name", show_default=False, help="Who the token is for, e.g. alice.")],
    role: Annotated[andon.Role, typer.Option("--role", case_sensitive=False, help="What it may do.")] = andon.Role.USER,
    db: DbOption = None,
) -> None:
    """Create a token and print it, once: only its hash is stored."""
    with andon.connect(db, actor="cli") as client:
        issued = client.create_token(name, role)
    console.print(Text.assemble("created ", (issued.record.role.value, "bold"), f" token {issued.record.name!r}:"))
    # Printed plainly on a line of its own so it can be copied; it is never shown again.
    console.print(issued.token, soft_wrap=True, markup=False)
    console.print(
        Text(
            "Keep it now: it is not stored and cannot be shown again. Send it as 'Authorization: Bearer <token>',"
            " or paste it into the dashboard's login. Revoke it with: andon token revoke " + issued.record.name,
            style="dim",
        ),
        soft_wrap=True,
    )


@token_cli.command("ls")
def list_tokens(db: DbOption = None) -> None:
    """List tokens: name, role, created, revoked (never a secret or hash)."""
    with andon.connect(db, actor="cli") as client:
        records = client.list_tokens()
    if not records:
        console.print(Text("no tokens yet: create one with andon token create --name NAME --role user", style="dim"))
        return
    table = Table("name", "role", "created", "revoked", box=None, header_style="bold")
    for record in records:
        table.add_row(
            record.name,
            record.role.value,
            _when(record.created_at),
            _when(record.revoked_at) if record.revoked_at is not None else "-",
            style=None if record.is_active else "dim",
        )
    console.print(table)


@token_cli.command()
def revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="The token's name.")],
    db: DbOption = None,
) -> None:
    """Revoke a token: requests carrying it are refused (within a second on running servers)."""
    with andon.connect(db, actor="cli") as client:
        record = client.revoke_token(name)
    console.print(f"revoked token {record.name!r} ({record.role.value})", markup=False)


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
