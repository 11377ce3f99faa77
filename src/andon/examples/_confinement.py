"""What the example kinds may touch on this machine: folders under the examples root, and
loopback (or allow-listed) hosts for ``crawl``.

``andon serve`` runs the example app by default, and any ``user`` token may submit its kinds,
so their params are confined twice: when a job is submitted (a param type that refuses, so
the job is never created: 422 over HTTP, one error line in the CLI), and again when the
handler starts, because the worker's settings (not the submitter's) decide what runs on the
worker's machine.

* **Folders** (``scan.folder``, ``papers.folder``, ``papers.output_dir``) must resolve, after
  ``~``, ``..`` and every symlink, to the examples root or below it. The roots are the
  folders in ``ANDON_EXAMPLES_ROOT`` (several separated by ``os.pathsep``); by default
  ``./samples`` of the working directory, where the README's ``andon sample-data ./samples``
  puts the sample data.
* **Crawl hosts**: ``crawl.start_url`` must be an http(s) URL on a loopback host
  (127.0.0.0/8, ::1, ``localhost``) or on a host that ``ANDON_CRAWL_ALLOW`` names (host names
  or IP addresses, comma-separated). Names are compared, never resolved: a name's DNS answer
  can change between this check and the fetch. The browser is then started with resolver
  rules that fail every other host, and without WebRTC over UDP, so neither a redirect nor
  a page's own requests (images, scripts, frames, sockets) can take it anywhere else.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from andon import ConfigurationError

__all__ = [
    "CRAWL_ALLOW_ENV",
    "DEFAULT_ROOT",
    "ROOT_ENV",
    "CrawlUrl",
    "ExamplesFolder",
    "Refused",
    "allowed_crawl_hosts",
    "checked_crawl_url",
    "checked_folder",
    "crawl_resolver_rules",
    "examples_roots",
    "resolve_crawl_url",
    "resolve_inside_roots",
]

ROOT_ENV: Final = "ANDON_EXAMPLES_ROOT"
CRAWL_ALLOW_ENV: Final = "ANDON_CRAWL_ALLOW"
DEFAULT_ROOT: Final = "samples"
"""The examples root when ``ANDON_EXAMPLES_ROOT`` is not set, relative to the working directory."""

_LOOPBACK_NAMES: Final = ("localhost",)
_HOST_NAME: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class Refused(ValueError):
    """A param outside what the example kinds may touch here; the message names the rule."""


# -- folders ------------------------------------------------------------------------------


def examples_roots() -> list[Path]:
    """The examples roots, resolved. Read at each call, so a changed setting counts at once."""
    configured = [entry for entry in os.environ.get(ROOT_ENV, "").split(os.pathsep) if entry.strip()]
    return [Path(entry).expanduser().resolve() for entry in configured or [DEFAULT_ROOT]]


def resolve_inside_roots(value: str) -> Path:
    """``value`` with ``~``, ``..`` and symlinks resolved. Raises :class:`Refused` unless it is
    an examples root or lies below one."""
    roots = examples_roots()
    try:
        resolved: Path | None = Path(value).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        resolved = None  # a NUL byte, a symlink loop, an unknown ~user: nowhere we allow
    if resolved is None or not any(resolved.is_relative_to(root) for root in roots):
        where = f"the examples root {roots[0]}"
        if len(roots) > 1:
            where = "one of the examples roots " + ", ".join(map(str, roots))
        raise Refused(f"must be inside {where} (set {ROOT_ENV} to allow others)")
    return resolved


def checked_folder(param: str, value: str) -> Path:
    """For a handler: the resolved folder, checked against the worker's own roots.

    Raises:
        PermissionError: ``value`` is outside them (the job fails naming the rule).
    """
    try:
        return resolve_inside_roots(value)
    except Refused as exc:
        raise PermissionError(f"{param}: {exc}") from None


def _folder_param(value: str) -> str:
    _refuse_as_param(resolve_inside_roots, value)
    # The value as given is what the job records; the handler resolves it again when it runs.
    return value


# -- crawl hosts -------------------------------------------------------------------------


def allowed_crawl_hosts() -> list[str]:
    """The hosts ``ANDON_CRAWL_ALLOW`` names, canonical (lower case, IPv6 compressed).

    Raises:
        ConfigurationError: an entry is neither a host name nor an IP address (each one ends
            up on the browser's command line, so nothing else may get in).
    """
    hosts = []
    for entry in os.environ.get(CRAWL_ALLOW_ENV, "").split(","):
        name = entry.strip().lower().removeprefix("[").removesuffix("]")
        if not name:
            continue
        canonical = _canonical_host(name)
        if canonical is None:
            raise ConfigurationError(f"{CRAWL_ALLOW_ENV}: {name!r} is not a host name or an IP address")
        hosts.append(canonical)
    return hosts


def _canonical_host(host: str) -> str | None:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host if _HOST_NAME.fullmatch(host) else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in _LOOPBACK_NAMES


def resolve_crawl_url(url: str) -> str:
    """The host of ``url``, canonical. Raises :class:`Refused` unless ``url`` is a plain
    http(s) URL on a loopback host or on one ``ANDON_CRAWL_ALLOW`` names."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refused(f"not an http(s) URL: {url!r}")
    if "@" in parts.netloc or "\\" in url:
        # Python and the browser split such URLs differently, so the host we would check
        # need not be the host the browser asks for.
        raise Refused("must not contain user info or backslashes")
    host = _canonical_host(parts.hostname or "")
    allowed = allowed_crawl_hosts()
    if host is None or not (_is_loopback(host) or host in allowed):
        raise Refused(
            "must be on a loopback host (127.0.0.0/8, ::1, localhost) or on a host named in "
            f"{CRAWL_ALLOW_ENV} (comma-separated); {parts.hostname or ''!r} is neither"
        )
    return host


def checked_crawl_url(param: str, url: str) -> str:
    """For a handler: ``url``'s host, checked against the worker's own allow-list.

    Raises:
        PermissionError: the host is not allowed (the job fails naming the rule).
    """
    try:
        return resolve_crawl_url(url)
    except Refused as exc:
        raise PermissionError(f"{param}: {exc}") from None


def crawl_resolver_rules(start_host: str) -> str:
    """Chromium's ``--host-resolver-rules``: every host fails to resolve but the allowed ones.

    Chromium applies them to IP addresses too, and to every request it makes (redirects,
    subresources, sockets), which Playwright's request routing does not: it never sees the
    hops of a redirect. Other loopback addresses than the start's are left out on purpose:
    a rule like ``127.*`` would also match a name such as ``127.example.org``.
    """
    hosts = dict.fromkeys(["localhost", "127.0.0.1", "::1", start_host, *allowed_crawl_hosts()])
    return ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {host}" for host in hosts)])


def _crawl_url_param(url: str) -> str:
    _refuse_as_param(resolve_crawl_url, url)
    return url


# -- param types ---------------------------------------------------------------------------


def _refuse_as_param(check: Callable[[str], object], value: str) -> None:
    """Run ``check(value)``; a :class:`Refused` becomes the validation error pydantic reports."""
    try:
        check(value)
    except Refused as exc:
        # The rule goes in as context, not as the template: a path may hold braces.
        raise PydanticCustomError("refused_by_examples_confinement", "{rule}", {"rule": str(exc)}) from None


ExamplesFolder = Annotated[str, AfterValidator(_folder_param)]
"""A folder param of an example kind: refused unless it resolves inside an examples root."""

CrawlUrl = Annotated[str, AfterValidator(_crawl_url_param)]
"""A URL param of ``crawl``: refused unless it is http(s) on a loopback or allow-listed host."""
