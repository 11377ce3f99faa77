"""Checks on what an ``andon`` command run in-process (Typer's ``CliRunner``) answered."""

from __future__ import annotations

from typer.testing import Result


def assert_one_error_line(result: Result, *fragments: str) -> None:
    """Exit code 1, one line on stderr that says what went wrong and contains every one of
    ``fragments``, no traceback anywhere."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
