"""``andon serve``: the REST API, the dashboard and an embedded worker in one process, on uvicorn."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Final

import uvicorn
from rich.console import Console
from rich.text import Text

import andon
from andon.api import Runtime, create_app, runtime_of

__all__ = ["ServeOptions", "is_loopback", "run_server", "seed_demo_jobs"]

log = logging.getLogger("andon.cli")

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_CONNECTIONS_GRACE_S: Final = 5.0
"""On shutdown, how long uvicorn waits for open requests (a ``cancel?wait=true``, say)
before it cancels them; event streams are ended at once."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    app: andon.App
    app_given: bool
    """Whether the app was asked for (``--app``, ``$ANDON_APP`` or ``--examples``) rather than
    the example app served by default; the banner says which kinds a default serves."""
    db: str | None
    host: str
    port: int
    token: str | None
    worker: bool
    scheduler: bool
    """Run a scheduler in the embedded worker (``--no-scheduler``: not)."""
    concurrency: int
    shutdown_grace_s: float
    example_jobs: bool
    """Queue the example jobs when the database is empty (``--examples``: the demo only, so an
    API node on a real database never fills it with jobs no worker of its own runs)."""
    log_level: str
    access_log: bool


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(options: ServeOptions, console: Console) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully: event streams end, the
    worker stops claiming, running jobs get the shutdown grace and then go back to the
    queue. A second signal stops running jobs at once. Must run in the main thread.

    Raises:
        andon.ConfigurationError: a non-loopback host without auth (no --token, no active
            token in the store), or a bad --db/--app.
    """
    logging.basicConfig(
        level=options.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    store = andon.open_store(options.db)
    try:
        if not is_loopback(options.host) and not options.token and not any(t.is_active for t in store.list_tokens()):
            raise andon.ConfigurationError(
                f"--host {options.host} is reachable from other machines, so the API needs a token: "
                "create tokens with 'andon token create --name NAME --role admin|user', or set ANDON_TOKEN "
                "(or --token); clients send 'Authorization: Bearer <token>'"
            )
        client = andon.Client(store, options.app, actor="http")
        seeded = _seed_if_wanted(client, options)
        worker = None
        if options.worker:
            worker = andon.Worker(
                options.app,
                store,
                concurrency=options.concurrency,
                shutdown_grace_s=options.shutdown_grace_s,
                scheduler=options.scheduler,
            )
        api = create_app(client, worker=worker, token=options.token)
        config = uvicorn.Config(
            api,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            access_log=options.access_log,
            timeout_graceful_shutdown=int(_CONNECTIONS_GRACE_S),
        )
        _banner(console, options, store.url, worker, seeded)
        try:
            _Server(config, runtime_of(api)).run()
        except SystemExit as exc:  # uvicorn exits when it cannot start, e.g. the port is taken
            if exc.code not in (0, None):
                raise andon.ConfigurationError(
                    f"cannot serve on {options.host}:{options.port} (uvicorn's error is above)"
                ) from None
    finally:
        store.close()


def _seed_if_wanted(client: andon.Client, options: ServeOptions) -> int:
    if not options.example_jobs or client.list_jobs(limit=1).items:
        return 0
    return len(seed_demo_jobs(client))


def seed_demo_jobs(client: andon.Client) -> list[andon.Job]:
    """Queue a few jobs of the example app that end in every state within a minute:
    one succeeds, one fails, two run long enough to be cancelled, one waits for a slot,
    and one is withdrawn before it starts."""
    jobs = [
        client.submit("count", {"n": 5, "interval_s": 0.2}),
        client.submit("fail", {"after_items": 2}),
        client.submit("count", {"n": 120, "interval_s": 0.5}),
        client.submit("sleeper", {"seconds": 45}),
        client.submit("count", {"n": 40, "interval_s": 0.5}),
    ]
    withdrawn = client.submit("count", {"n": 10})
    jobs.append(client.cancel(withdrawn.id, message="withdrawn by the demo before it started").job)
    return jobs


def _banner(console: Console, options: ServeOptions, url: str, worker: andon.Worker | None, seeded: int) -> None:
    address = f"[{options.host}]" if ":" in options.host else options.host
    line = Text("andon serve ", style="bold")
    line.append(f"http://{address}:{options.port}", style="bold cyan")
    line.append(f"  db {url}  ")
    here = "no worker in this server (--no-worker; see andon workers)"
    if worker is not None:
        here = f"worker {worker.concurrency} slots"
    line.append(here, style="dim")
    if options.token:
        line.append("  token required", style="dim")
    console.print(line, soft_wrap=True)
    kinds = ", ".join(kind.kind for kind in options.app.kinds)
    if options.app_given:
        console.print(Text(f"kinds {kinds}", style="dim"), soft_wrap=True)
    else:
        note = f"kinds {kinds} (the examples: give --app MODULE:ATTR or $ANDON_APP to serve yours)"
        console.print(Text(note, style="yellow"), soft_wrap=True)
    if seeded:
        console.print(Text(f"queued {seeded} example jobs (the database was empty)", style="dim"), soft_wrap=True)
    note = "open the address above in a browser; Ctrl-C stops (running jobs go back to the queue)"
    console.print(Text(note, style="dim"), soft_wrap=True)


class _Server(uvicorn.Server):
    """uvicorn's server, with andon's signal handling.

    The first SIGINT/SIGTERM ends the event streams (open dashboards would otherwise hold
    the shutdown) and starts the graceful shutdown, whose lifespan stops the worker; a
    second one interrupts the running jobs at once. The process then exits normally, as
    ``andon worker`` does, rather than re-raising the signal as plain uvicorn does.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self._runtime = runtime
        self._signals = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in _SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: it only sets flags and schedules work on the event loop.
        self._signals += 1
        name = signal.Signals(sig).name
        if self._signals == 1:
            self.should_exit = True
            self._runtime.end_streams_soon()
            worker = self._runtime.worker
            note = f"{name}: stopping"
            if worker is not None:
                note += f"; running jobs get {worker.shutdown_grace_s:g} s, then go back to the queue (again: at once)"
            self._runtime.call_soon(lambda: log.info(note))
        else:
            self._runtime.interrupt_worker_soon()
            self._runtime.call_soon(lambda: log.warning("%s again: stopping running jobs now", name))
