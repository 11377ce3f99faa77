"""``andon sample-data DIR``: make the inputs of the example kinds on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from andon.cli._input import split_list

__all__ = ["sample_data"]

_TRY = {
    "media": "andon submit scan folder={path}",
    "papers": "andon submit papers folder={path}",
    "site": "python -m http.server -d {path} 8000 & andon submit crawl start_url=http://127.0.0.1:8000/",
}


def sample_data(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write (made if missing).", show_default=False)
    ],
    only: Annotated[
        str | None,
        typer.Option("--only", metavar="PART,…", help="Only these parts: media, papers, site. (default: all)"),
    ] = None,
) -> None:
    """Make local inputs for the example kinds: DIR/media (ffmpeg), DIR/papers (PDFs), DIR/site (HTML)."""
    # The example kinds load on use: every other command starts without them.
    from andon.examples import create_sample_data
    from andon.examples._sample_data import SamplePart

    names = split_list(only)
    try:
        parts = list(SamplePart) if names is None else [SamplePart(name) for name in names]
    except ValueError:
        raise typer.BadParameter("parts are media, papers and site", param_hint="'--only'") from None
    if not parts:
        raise typer.BadParameter("name at least one part", param_hint="'--only'")
    console = Console(highlight=False)
    written = create_sample_data(folder, parts)
    for part in parts:
        path = folder / part.value
        console.print(Text.assemble((f"{written[part.value]:3} files ", "bold"), str(path)), soft_wrap=True)
        console.print(Text("    try: " + _TRY[part.value].format(path=path), style="dim"), soft_wrap=True)
