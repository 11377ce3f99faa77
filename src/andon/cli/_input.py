"""Turning command-line text into what the public API takes: params, the app, the database."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import re
import sys
from collections.abc import Iterable
from typing import Annotated, Any, NoReturn

import typer

import andon

__all__ = ["DbOption", "load_app", "parse_duration", "parse_moment", "parse_params", "split_list"]

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        show_default=False,
        help="Database URL. (default: $ANDON_DATABASE_URL, else sqlite:///andon.db)",
    ),
]


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(w|d|h|m|s))", re.IGNORECASE)
_UNIT_S = {"w": 7 * 86_400.0, "d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str, option: str) -> float:
    """``"10m"``, ``"1h30m"``, ``"30d"``, ``"2w"``, ``"45s"``, ``"2.5h"`` (or plain seconds) -> seconds.

    Raises:
        typer.BadParameter: anything else (named after ``option``).
    """
    cleaned = text.strip().replace(" ", "")
    try:
        seconds = float(cleaned)
    except ValueError:
        parts = _DURATION.findall(cleaned)
        if not parts or "".join(f"{n}{u}" for n, u in parts).lower() != cleaned.lower():
            raise typer.BadParameter(
                f"{text!r} is not a duration: write e.g. 45s, 10m, 1h30m, 2d", param_hint=f"'{option}'"
            ) from None
        seconds = sum(float(n) * _UNIT_S[u.lower()] for n, u in parts)
    if not seconds >= 0 or seconds == float("inf"):
        raise typer.BadParameter(f"{text!r} is not a duration of zero or more", param_hint=f"'{option}'")
    return seconds


def parse_moment(text: str, option: str) -> datetime.datetime:
    """An ISO 8601 date and time (``2026-12-24T18:00``, ``...Z``, ``...+01:00``); one without a
    time zone is in this machine's local time zone.

    Raises:
        typer.BadParameter: not a date and time.
    """
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date and time: write e.g. 2026-12-24T18:00 or 2026-12-24T18:00:00+01:00",
            param_hint=f"'{option}'",
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:  # Any: JSON values
    """``["n=5", "flag=true", "name=a b"]`` -> ``{"n": 5, "flag": True, "name": "a b"}``.

    A value is read as JSON when it is valid JSON, and kept as text otherwise
    (``NaN`` and ``Infinity`` stay text: they are not JSON).

    Raises:
        typer.BadParameter: an item has no ``=``, no key, or repeats a key (a usage error).
    """
    params: dict[str, Any] = {}  # Any: JSON values
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="'PARAMS'")
        if key in params:
            raise typer.BadParameter(f"the param {key!r} is given twice", param_hint="'PARAMS'")
        params[key] = _value(raw)
    return params


def _value(raw: str) -> Any:  # Any: a JSON value, or the text itself
    try:
        return json.loads(raw, parse_constant=_not_json)
    except ValueError:
        return raw


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


def split_list(text: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; ``None`` stays ``None``."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def load_app(reference: str) -> andon.App:
    """Import ``module:attribute`` (the attribute may be dotted) and check it is an :class:`andon.App`.

    The current folder is importable, as with ``python -m``, so ``--app jobs:app`` finds
    ``./jobs.py`` also from the ``andon`` script.

    Raises:
        andon.ConfigurationError: the reference is malformed, the import fails, or the
            attribute is missing or not an app.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise andon.ConfigurationError(f"--app must look like module:attribute (e.g. myjobs:app), not {reference!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything while it is imported
        raise andon.ConfigurationError(f"cannot import {module_name!r} for --app: {type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise andon.ConfigurationError(
                f"--app {reference}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not isinstance(target, andon.App):
        kind = type(target).__name__
        raise andon.ConfigurationError(f"--app {reference} is a {kind}, not an andon.App")
    return target
