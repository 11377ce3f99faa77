"""Turning command-line text into what the public API takes: params, the app, the database."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import sys
from collections.abc import Iterable
from typing import Annotated, Any, NoReturn

import typer

import andon

__all__ = ["DbOption", "load_app", "parse_duration", "parse_params", "split_list"]

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        show_default=False,
        help="Database URL. (default: $ANDON_DATABASE_URL, else sqlite:///andon.db)",
    ),
]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str, option: str) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` or plain seconds -> seconds.

    Raises:
        typer.BadParameter: anything else, negative or not finite (a usage error).
    """
    match = _DURATION.match(text.lower())
    seconds = float(match[1]) * _UNIT_S[match[2]] if match else math.nan
    if not math.isfinite(seconds):
        raise typer.BadParameter(
            f"{text!r} is not a duration: use a number and a unit, e.g. 30d, 12h, 90m, 45s", param_hint=f"'{option}'"
        )
    return seconds


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
