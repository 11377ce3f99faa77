"""Load over the real HTTP API: many clients, many cancels, many event streams, a soak.

Usage::

    python benchmarks/load.py [--store sqlite|postgres] [--db URL] [--sections LIST]
                              [--soak-minutes N] [--quick] [--out PATH]

Every section starts its own ``andon serve`` process on a fresh database (a new SQLite
file, or a new PostgreSQL schema on ``--db``, else ``$ANDON_TEST_POSTGRES_URL``, else
``postgresql://root@127.0.0.1:5432/test``, dropped afterwards) and talks to it over
loopback HTTP only, with httpx. Jobs run on a separate ``andon worker`` process (or, with
``--worker embedded``, on the server's own worker); the kinds are ``benchmarks/_load_jobs.py``.

submit  ``--jobs`` (10,000) no-op jobs submitted by ``--clients`` (50) concurrent clients:
        errors (must be 0), submit latency p50/p99/max, the rate; then the store must
        hold exactly those jobs, and every one must run.
cancel  ``--cancels`` (1,000) concurrent ``POST /jobs/{id}/cancel?wait=true`` for one
        running job: every answer 200 with the same final state, and the job's history
        holds exactly one ``cancel requested`` transition. Latency p50/p99.
sse     ``--sse-clients`` (100) clients on ``GET /stream`` while ``--sse-jobs`` (1,000)
        short jobs run: events per client, which jobs each saw end, ``resync`` count,
        server RSS at start, middle and end.
soak    ``--soak-minutes`` (0: off) of continuous submit / cancel / delete / list with a
        few event streams open; server and worker RSS and open file descriptors sampled
        every ``--sample-s`` (30) seconds; every log scanned for ERROR and Traceback.

Each server's and worker's log is kept next to the JSON (``load-logs/`` for ``load.json``). Prints tables and
writes everything as JSON to ``benchmarks/out/load.json`` (or ``--out``). ``--quick`` is a
small run of every section (soak 0.2 min) for the test suite; its figures mean nothing.
Exit status 1 when a check failed (errors, not exactly one transition, a client without
events, an error in a log).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

import _report
import andon
from _report import summary, table

BENCH_DIR: Final = Path(__file__).resolve().parent
DEFAULT_OUT: Final = BENCH_DIR / "out" / "load.json"
DEFAULT_PG_URL: Final = os.environ.get("ANDON_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"
APP_REF: Final = "_load_jobs:app"
START_S: Final = 30.0
STOP_S: Final = 60.0
TERMINAL: Final = frozenset({"succeeded", "failed", "cancelled"})
PROBLEM = re.compile(r"\bERROR\b|Traceback")

Json = Any  # Any: decoded JSON


# -- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One look at a process: resident memory (kB), open file descriptors (of which
    sockets), threads."""

    at_s: float
    rss_kb: int
    fds: int
    sockets: int
    threads: int

    def as_json(self) -> dict[str, float | int]:
        return {
            "at_s": round(self.at_s, 1),
            "rss_kb": self.rss_kb,
            "fds": self.fds,
            "sockets": self.sockets,
            "threads": self.threads,
        }


def sample(pid: int, since: float) -> Sample:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return Sample(
        at_s=time.monotonic() - since,
        rss_kb=int(fields["VmRSS"][0]),
        fds=len(targets),
        sockets=sum(1 for target in targets if target.startswith("socket:")),
        threads=int(fields["Threads"][0]),
    )


class Process:
    """An ``andon`` command in the background, its output in a log file (never a full pipe)."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
        env.pop("ANDON_TOKEN", None)
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "andon.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.exit_code: int | None = None
        self.stop_s: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM, then wait; SIGKILL (and say so in the log scan) if it hangs."""
        began = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.popen.wait(STOP_S)
            self.stop_s = round(time.monotonic() - began, 2)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            self.exit_code = None

    def problems(self) -> list[str]:
        """Log lines naming an ERROR or a Traceback."""
        return [line for line in self.output().splitlines() if PROBLEM.search(line)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Deployment:
    """One server (and maybe a worker process) on one fresh database."""

    label: str
    base_url: str
    server: Process
    worker: Process | None
    url: str

    @property
    def processes(self) -> list[Process]:
        return [self.server] if self.worker is None else [self.server, self.worker]

    def samples(self, since: float) -> dict[str, Sample]:
        return {process.name: sample(process.pid, since) for process in self.processes}

    def report(self) -> dict[str, Any]:  # Any: JSON values
        return {
            process.name: {
                "log": str(process.log),
                "exit_code": process.exit_code,
                "seconds_to_stop": process.stop_s,
                "problems": len(process.problems()),
                "problem_lines": process.problems()[:20],
            }
            for process in self.processes
        }

    def problems(self) -> list[str]:
        found = [f"{p.name}: {line}" for p in self.processes for line in p.problems()]
        found += [f"{p.name} exited with {p.exit_code}" for p in self.processes if p.exit_code != 0]
        return found


@dataclass(frozen=True)
class Setup:
    store: str
    pg_url: str
    worker: str
    concurrency: int
    logs: Path
    folder: Path


@contextlib.contextmanager
def database(setup: Setup, label: str) -> Iterator[str]:
    if setup.store == "sqlite":
        yield f"sqlite:///{setup.folder / label}.db"
        return
    import _common  # imports psycopg: only when PostgreSQL is asked for

    with _common.fresh_schema(setup.pg_url, f"load_{label}") as url:
        yield url


@contextlib.contextmanager
def deployment(setup: Setup, label: str) -> Iterator[Deployment]:
    """Serve a fresh database; stop every process afterwards (their logs stay)."""
    setup.logs.mkdir(parents=True, exist_ok=True)
    with database(setup, label) as url:
        port = free_port()
        common = ["--db", url, "--app", APP_REF, "--shutdown-grace", "2"]
        serve = ["serve", "--port", str(port), "--no-demo-jobs", *common]
        serve += ["--no-worker"] if setup.worker == "separate" else ["--concurrency", str(setup.concurrency)]
        server = Process("server", serve, setup.logs / f"{label}-server.log")
        worker = None
        try:
            # Both at once on a new database, as a process manager would start them.
            if setup.worker == "separate":
                worker_args = ["worker", "--concurrency", str(setup.concurrency), *common]
                worker = Process("worker", worker_args, setup.logs / f"{label}-worker.log")
            wait_serving(server, f"http://127.0.0.1:{port}")
            if worker is not None:
                started = worker
                _report.wait_for(lambda: "andon worker" in worker_ready(started), "the worker to start", START_S, 0.05)
            yield Deployment(label, f"http://127.0.0.1:{port}", server, worker, url)
        finally:
            for process in (worker, server):
                if process is not None:
                    process.stop()


def worker_ready(worker: Process) -> str:
    worker.check_alive()
    return worker.output()


def wait_serving(server: Process, base_url: str) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            if httpx.get(base_url + "/api/v1/info", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise SystemExit(f"andon serve did not answer within {START_S:g} s:\n{server.output()[-4000:]}")


# -- HTTP helpers ------------------------------------------------------------------------------


@dataclass
class Tally:
    """Latencies (seconds) of the requests that got the expected answer, and every other outcome."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    def add_error(self, what: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(what)
        else:
            self.errors.append("")  # counted, not kept


async def timed(
    tally: Tally, http: httpx.AsyncClient, method: str, path: str, expected: int, body: Json = None
) -> httpx.Response | None:
    """One request; a transport error or another status is an error (and ``None``)."""
    began = time.perf_counter()
    try:
        response = await http.request(method, path, json=body)
    except httpx.HTTPError as exc:
        tally.add_error(f"{method} {path}: {type(exc).__name__}: {exc}")
        return None
    took = time.perf_counter() - began
    if response.status_code != expected:
        tally.add_error(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return None
    tally.latencies.append(took)
    return response


async def wait_api(
    http: httpx.AsyncClient, path: str, done: Callable[[Json], bool], what: str, bound_s: float, poll: float = 0.05
) -> Json:
    """GET ``path`` until ``done(json)``; give up after ``bound_s`` seconds, naming ``what``."""
    deadline = time.monotonic() + bound_s
    while True:
        response = await http.get(path)
        response.raise_for_status()
        data = response.json()
        if done(data):
            return data
        if time.monotonic() >= deadline:
            raise SystemExit(f"gave up after {bound_s:g} s waiting for {what}")
        await asyncio.sleep(poll)


def no_active_jobs(page: Json) -> bool:
    return not page["items"]


ACTIVE_QUERY: Final = "/api/v1/jobs?status=queued&status=running&status=cancelling&limit=1"


def count_by_status(url: str) -> tuple[list[str], dict[str, int]]:
    """Every job id in the store (read with the library, not the API) and the count per state."""
    ids: list[str] = []
    statuses: dict[str, int] = {}
    store = andon.open_store(url)
    try:
        client = andon.Client(store, actor="bench")
        cursor = None
        while True:
            page = client.list_jobs(limit=1000, cursor=cursor)
            for job in page.items:
                ids.append(job.id)
                statuses[job.status.value] = statuses.get(job.status.value, 0) + 1
            cursor = page.next_cursor
            if cursor is None:
                return ids, statuses
    finally:
        store.close()


def pool(size: int) -> httpx.Limits:
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


# -- submit ------------------------------------------------------------------------------------


async def submit_section(served: Deployment, jobs: int, clients: int) -> dict[str, Any]:  # Any: JSON values
    tally = Tally()
    ids: list[str] = []

    async def one_client(count: int) -> None:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
            for _ in range(count):
                response = await timed(tally, http, "POST", "/api/v1/jobs", 201, {"kind": "noop", "params": {}})
                if response is not None:
                    ids.append(response.json()["id"])

    shares = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]
    began = time.perf_counter()
    await asyncio.gather(*(one_client(share) for share in shares))
    took = time.perf_counter() - began
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        await wait_api(http, ACTIVE_QUERY, no_active_jobs, f"{jobs} no-op jobs to run", max(120, jobs / 5))
        ran = time.perf_counter() - began
    stored, statuses = count_by_status(served.url)
    checks = {
        "zero errors": not tally.errors,
        f"store holds exactly {jobs} jobs": len(stored) == jobs and sorted(stored) == sorted(ids),
        "every job succeeded": statuses == {"succeeded": jobs},
    }
    return {
        "jobs": jobs,
        "clients": clients,
        "errors": len(tally.errors),
        "error_samples": tally.errors[:20],
        "seconds": round(took, 2),
        "submits_per_s": round(jobs / took, 1),
        "seconds_to_all_run": round(ran, 2),
        "stored": len(stored),
        "statuses": statuses,
        "latency": summary("submit: POST /jobs", tally.latencies),
        "checks": checks,
    }


# -- cancel ------------------------------------------------------------------------------------


async def cancel_section(served: Deployment, cancels: int) -> dict[str, Any]:  # Any: JSON values
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=served.base_url, timeout=120))
        created = (await http.post("/api/v1/jobs", json={"kind": "hold", "params": {}})).json()
        job_id = created["id"]
        await wait_api(http, f"/api/v1/jobs/{job_id}", lambda job: job["status"] == "running", "the job to run", 30)
        path = f"/api/v1/jobs/{job_id}/cancel?wait=true&timeout=120"
        # A client (so a connection) per request: one pool of 1,000 connections costs httpx
        # more than the server (its pool scans every connection for every request). None is
        # opened ahead: one left idle beyond the server's keep-alive (5 s) while the others
        # open would be closed under the request sent on it.
        tls = ssl.create_default_context()  # unused over http://, but each client would build one
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=served.base_url, timeout=120, verify=tls))
            for _ in range(cancels)
        ]
        tally = Tally()
        finals: dict[str, int] = {}
        go = asyncio.Event()

        async def one_cancel(client: httpx.AsyncClient) -> None:
            await go.wait()
            response = await timed(tally, client, "POST", path, 200)
            if response is not None:
                status = response.json()["status"]
                finals[status] = finals.get(status, 0) + 1

        tasks = [asyncio.create_task(one_cancel(client)) for client in clients]
        await asyncio.sleep(0)
        server_cpu = cpu_seconds(served.server.pid)
        began = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        took = time.perf_counter() - began
        server_cpu = cpu_seconds(served.server.pid) - server_cpu
        # What one cancel costs with no queue in front of it, to read the above by.
        alone = Tally()
        for _ in range(min(cancels, 100)):
            await timed(alone, http, "POST", path, 200)
        events = (await http.get(f"/api/v1/jobs/{job_id}/events")).json()["items"]
    requested = [e for e in events if e["type"] == "cancel requested"]
    to_cancelling = [e for e in events if e["to_status"] == "cancelling" and e["from_status"] != "cancelling"]
    to_cancelled = [e for e in events if e["to_status"] == "cancelled"]
    checks = {
        f"all {cancels} answered 200": len(tally.latencies) == cancels and not tally.errors and not alone.errors,
        "every answer has the same final state (cancelled)": finals == {"cancelled": cancels},
        "exactly one cancel requested transition": len(requested) == 1 and len(to_cancelling) == 1,
        "exactly one cancelled transition": len(to_cancelled) == 1,
    }
    return {
        "cancels": cancels,
        "errors": len(tally.errors),
        "error_samples": tally.errors[:20],
        "final_states": finals,
        "seconds": round(took, 3),
        "server_cpu_s": round(server_cpu, 2),
        "history": [f"{e['type']}: {e['from_status']} -> {e['to_status']}" for e in events],
        "cancel_requested_events": len(requested),
        "latency": summary(f"cancel?wait=true, same job, {cancels} at once", tally.latencies),
        "latency_one_at_a_time": summary("cancel?wait=true, same job, one at a time", alone.latencies),
        "errors_one_at_a_time": alone.errors[:20],
        "checks": checks,
    }


# -- sse ---------------------------------------------------------------------------------------


@dataclass
class StreamClient:
    """What one event-stream client saw."""

    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    resyncs: int = 0
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None

    def take(self, block: bytes) -> None:
        name = b""
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if not name:
            return  # a comment (keep-alive) or the retry hint
        self.events += 1
        kind = name.decode()
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if kind == "hello":
            self.hello.set()
        elif kind == "resync":
            self.resyncs += 1
        elif kind in ("job.created", "job.status"):  # a short job may be new and over by the next snapshot
            event = json.loads(data)
            if event["job"]["status"] in TERMINAL:
                self.ended.add(event["id"])


async def listen(base_url: str, client: StreamClient) -> None:
    """Read ``GET /stream`` until cancelled; every complete message goes to ``client``."""
    try:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60, read=None)) as http,
            http.stream("GET", "/api/v1/stream") as response,
        ):
            if response.status_code != 200:
                client.error = f"GET /stream: {response.status_code}"
                client.hello.set()
                return
            pending = b""
            async for chunk in response.aiter_raw():
                pending += chunk
                *blocks, pending = pending.split(b"\n\n")
                for block in blocks:
                    client.take(block)
    except httpx.HTTPError as exc:
        client.error = f"GET /stream: {type(exc).__name__}: {exc}"
        client.hello.set()


@contextlib.asynccontextmanager
async def streams(base_url: str, count: int) -> AsyncIterator[list[StreamClient]]:
    clients = [StreamClient() for _ in range(count)]
    tasks = [asyncio.create_task(listen(base_url, client)) for client in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.hello.wait() for c in clients)), START_S)
        yield clients
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Sampler:
    """Samples the deployment's processes every ``every_s`` seconds in the background."""

    def __init__(self, served: Deployment, every_s: float) -> None:
        self.served = served
        self.every_s = every_s
        self.since = time.monotonic()
        self.samples: list[dict[str, Sample]] = []
        self._task: asyncio.Task[None] | None = None

    def take(self) -> dict[str, Sample]:
        taken = self.served.samples(self.since)
        self.samples.append(taken)
        return taken

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.take()

    def __enter__(self) -> Sampler:
        self.take()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.take()

    def series(self, name: str) -> list[dict[str, float | int]]:
        return [taken[name].as_json() for taken in self.samples if name in taken]

    def start_middle_end(self, name: str) -> dict[str, dict[str, float | int]]:
        series = self.series(name)
        return {"start": series[0], "middle": series[len(series) // 2], "end": series[-1]}


async def sse_section(served: Deployment, clients: int, jobs: int, job_s: float) -> dict[str, Any]:  # Any: JSON
    async with streams(served.base_url, clients) as listeners:
        with Sampler(served, 0.5) as sampler:
            tally = Tally()
            ids: list[str] = []
            async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:

                async def submitter(count: int) -> None:
                    for _ in range(count):
                        body = {"kind": "short", "params": {"seconds": job_s}}
                        response = await timed(tally, http, "POST", "/api/v1/jobs", 201, body)
                        if response is not None:
                            ids.append(response.json()["id"])

                began = time.perf_counter()
                await asyncio.gather(*(submitter(jobs // 10 + (1 if i < jobs % 10 else 0)) for i in range(10)))
                await wait_api(http, ACTIVE_QUERY, no_active_jobs, f"{jobs} jobs to run", max(120, jobs * job_s))
                took = time.perf_counter() - began
                newest = max(ids) if ids else ""

                def saw_the_last(listener: StreamClient) -> bool:
                    return newest in listener.ended or listener.resyncs > 0 or listener.error is not None

                for _ in range(150):  # the streams lag the store by a snapshot or two: 15 s is plenty
                    if all(saw_the_last(c) for c in listeners):
                        break
                    await asyncio.sleep(0.1)
        errors = [c.error for c in listeners if c.error]
    ended = [len(c.ended) for c in listeners]
    per_client = [c.events for c in listeners]
    resyncs = [c.resyncs for c in listeners]
    memory = sampler.start_middle_end("server")
    checks = {
        "zero submit errors": not tally.errors,
        "no stream error": not errors,
        "every client got events": min(per_client, default=0) > 1,  # more than its hello
        "every client saw jobs end": min(ended, default=0) > 0,
        "every client saw the last job end (or was told to resync)": all(saw_the_last(c) for c in listeners),
    }
    return {
        "clients": clients,
        "jobs": jobs,
        "job_s": job_s,
        "seconds": round(took, 2),
        "submit_errors": len(tally.errors),
        "stream_errors": errors[:20],
        "events_per_client": {"min": min(per_client), "max": max(per_client), "total": sum(per_client)},
        "jobs_seen_ending_per_client": {"min": min(ended), "max": max(ended), "of": len(ids)},
        "clients_told_to_resync": sum(1 for r in resyncs if r),
        "resyncs_total": sum(resyncs),
        "by_type_first_client": listeners[0].by_type if listeners else {},
        "server_memory": memory,
        "server_rss_max_kb": max(s["rss_kb"] for s in sampler.series("server")),
        "samples": {name: sampler.series(name) for name in ("server", "worker")},
        "checks": checks,
    }


# -- soak --------------------------------------------------------------------------------------


@dataclass
class SoakLoad:
    """Per operation: what came back; plus how many of each job kind ended how."""

    ops: dict[str, Tally] = field(default_factory=dict)

    def tally(self, op: str) -> Tally:
        return self.ops.setdefault(op, Tally())


async def soak_client(base_url: str, load: SoakLoad, stop_at: float, rng: random.Random) -> None:
    """Submit, cancel, delete and list until ``stop_at``; keeps at most a few dozen jobs of its own."""
    mine: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        while time.monotonic() < stop_at:
            roll = rng.random()
            if roll < 0.35:
                body = {"kind": "short", "params": {"seconds": rng.uniform(0.0, 0.3)}}
                response = await timed(load.tally("submit short"), http, "POST", "/api/v1/jobs", 201, body)
                if response is not None:
                    mine.append(response.json()["id"])
            elif roll < 0.55:
                await hold_and_cancel(http, load, rng)
            elif roll < 0.8 and mine:
                job_id = mine.pop(rng.randrange(len(mine)))
                await timed(load.tally("delete"), http, "DELETE", f"/api/v1/jobs/{job_id}", 204)
            elif roll < 0.9:
                await timed(load.tally("list"), http, "GET", "/api/v1/jobs?limit=50", 200)
            elif mine:
                await timed(load.tally("get"), http, "GET", f"/api/v1/jobs/{rng.choice(mine)}", 200)
            while len(mine) > 40:
                await timed(load.tally("delete"), http, "DELETE", f"/api/v1/jobs/{mine.pop(0)}", 204)
            await asyncio.sleep(rng.uniform(0.0, 0.02))
        for job_id in mine:
            await timed(load.tally("delete"), http, "DELETE", f"/api/v1/jobs/{job_id}", 204)


async def hold_and_cancel(http: httpx.AsyncClient, load: SoakLoad, rng: random.Random) -> None:
    """A job that only ends when cancelled: cancel it queued or running, wait or not, then delete it."""
    response = await timed(load.tally("submit hold"), http, "POST", "/api/v1/jobs", 201, {"kind": "hold"})
    if response is None:
        return
    job_id = response.json()["id"]
    await asyncio.sleep(rng.uniform(0.0, 0.2))
    wait = rng.random() < 0.5
    path = f"/api/v1/jobs/{job_id}/cancel" + ("?wait=true&timeout=60" if wait else "")
    cancelled = await timed(load.tally("cancel?wait=true" if wait else "cancel"), http, "POST", path, 200)
    if cancelled is not None:
        status = cancelled.json()["status"]
        allowed = ("cancelled",) if wait else ("cancelled", "cancelling")
        if status not in allowed:
            load.tally("cancel state").add_error(f"cancel of {job_id} answered {status}")
    await timed(load.tally("delete"), http, "DELETE", f"/api/v1/jobs/{job_id}", 204)


async def soak_section(
    served: Deployment, minutes: float, clients: int, streams_open: int, every_s: float, seed: int
) -> dict[str, Any]:  # Any: JSON values
    load = SoakLoad()
    seconds = minutes * 60
    async with streams(served.base_url, streams_open) as listeners:
        with Sampler(served, every_s) as sampler:
            print(f"  soak: {seconds:.0f} s, {clients} clients, {streams_open} event streams", flush=True)
            stop_at = time.monotonic() + seconds
            rngs = [random.Random(seed * 1000 + i) for i in range(clients)]
            progress = asyncio.create_task(soak_progress(sampler, load, every_s))
            try:
                await asyncio.gather(*(soak_client(served.base_url, load, stop_at, rng) for rng in rngs))
            finally:
                progress.cancel()
            async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
                await wait_api(http, ACTIVE_QUERY, no_active_jobs, "the soak's jobs to end", 120)
                left = (await http.get("/api/v1/jobs?limit=1000")).json()["items"]
            await asyncio.sleep(min(every_s, 5.0))  # let the event streams catch up before the last sample
    errors = {op: tally.errors[:10] for op, tally in load.ops.items() if tally.errors}
    stream_events = [c.events for c in listeners]
    stream_errors = [c.error for c in listeners if c.error]
    processes: dict[str, dict[str, Any]] = {}  # Any: JSON values
    for name in ("server", "worker"):
        series = sampler.series(name)
        if series:
            processes[name] = {
                "start": series[0],
                "after_first_interval": series[min(1, len(series) - 1)],
                "end": series[-1],
                "rss_max_kb": max(s["rss_kb"] for s in series),
                "fds_max": max(s["fds"] for s in series),
            }
    left_over = [job for job in left if job["kind"] != "short"]
    checks = {
        "zero request errors": not errors,
        "no stream error": not stream_errors,
        "every stream got events": min(stream_events, default=0) > 1,
        "no hold job left behind": not left_over,
    }
    return {
        "minutes": minutes,
        "clients": clients,
        "streams": streams_open,
        "requests": {op: tally.requests for op, tally in load.ops.items()},
        "errors": {op: len(tally.errors) for op, tally in load.ops.items() if tally.errors},
        "error_samples": errors,
        "latency": {op: summary(op, tally.latencies) for op, tally in load.ops.items()},
        "stream_events": {"min": min(stream_events, default=0), "max": max(stream_events, default=0)},
        "stream_errors": stream_errors[:20],
        "jobs_left": len(left),
        "processes": processes,
        "samples": {name: sampler.series(name) for name in ("server", "worker")},
        "checks": checks,
    }


async def soak_progress(sampler: Sampler, load: SoakLoad, every_s: float) -> None:
    """One line per sample, so a long soak shows it is alive."""
    while True:
        await asyncio.sleep(every_s)
        await asyncio.sleep(0.1)  # just after the sampler's own look
        taken = sampler.samples[-1]
        figures = "  ".join(
            f"{name} rss {s.rss_kb / 1024:.1f} MB fds {s.fds} ({s.sockets} sockets)" for name, s in taken.items()
        )
        requests = sum(t.requests for t in load.ops.values())
        errors = sum(len(t.errors) for t in load.ops.values())
        first = next(iter(taken.values()))
        print(f"  {first.at_s:6.0f} s  {figures}  requests {requests} errors {errors}", flush=True)


# -- main --------------------------------------------------------------------------------------


SECTIONS: Final = ("submit", "cancel", "sse", "soak")


@dataclass
class Options:
    jobs: int
    clients: int
    cancels: int
    sse_clients: int
    sse_jobs: int
    sse_job_s: float
    soak_minutes: float
    soak_clients: int
    soak_streams: int
    sample_s: float
    seed: int


async def run_section(name: str, setup: Setup, options: Options) -> dict[str, Any]:  # Any: JSON values
    with deployment(setup, name) as served:
        if name == "submit":
            result = await submit_section(served, options.jobs, options.clients)
        elif name == "cancel":
            result = await cancel_section(served, options.cancels)
        elif name == "sse":
            result = await sse_section(served, options.sse_clients, options.sse_jobs, options.sse_job_s)
        else:
            result = await soak_section(
                served, options.soak_minutes, options.soak_clients, options.soak_streams, options.sample_s, options.seed
            )
    result["logs"] = served.report()
    problems = served.problems()
    result["checks"]["no ERROR or Traceback in the logs, clean exit"] = not problems
    result["log_problems"] = problems[:20]
    return result


def kb(value: float | int) -> str:
    return f"{value / 1024:.1f} MB"


def latency_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:  # Any: JSON values
    summaries = []
    if "submit" in results:
        summaries.append(results["submit"]["latency"])
    if "cancel" in results:
        summaries += [results["cancel"]["latency"], results["cancel"]["latency_one_at_a_time"]]
    if "soak" in results:
        summaries += [{**s, "label": f"soak: {op}"} for op, s in results["soak"]["latency"].items()]
    rows = [["latency", "runs", "p50", "p99", "max"]]
    for item in summaries:
        figures = [item[key] for key in ("p50_ms", "p99_ms", "max_ms")]
        rows.append([item["label"], str(item["runs"]), *(f"{v:.1f} ms" if v is not None else "-" for v in figures)])
    return rows


def figure_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:  # Any: JSON values
    rows = [["figure", "value"]]
    if "submit" in results:
        s = results["submit"]
        rows.append([f"submit: {s['jobs']} jobs by {s['clients']} clients, errors", str(s["errors"])])
        rows.append(["submit: rate", f"{s['submits_per_s']:.0f} jobs/s ({s['seconds']:.1f} s)"])
        rows.append(["submit: jobs in the store / succeeded", f"{s['stored']} / {s['statuses'].get('succeeded', 0)}"])
    if "cancel" in results:
        c = results["cancel"]
        rows.append([f"cancel: {c['cancels']} concurrent, answers", json.dumps(c["final_states"])])
        rows.append(["cancel: 'cancel requested' events", str(c["cancel_requested_events"])])
        rows.append(
            ["cancel: all answered after / server CPU used", f"{c['seconds']:.2f} s / {c['server_cpu_s']:.2f} s"]
        )
    if "sse" in results:
        e = results["sse"]
        memory = e["server_memory"]
        rows.append(
            [f"sse: {e['clients']} clients, {e['jobs']} jobs, events/client min", str(e["events_per_client"]["min"])]
        )
        seen = e["jobs_seen_ending_per_client"]
        rows.append(["sse: jobs seen ending per client (min-max)", f"{seen['min']}-{seen['max']} of {seen['of']}"])
        rows.append(["sse: clients told to resync", str(e["clients_told_to_resync"])])
        rows.append(
            [
                "sse: server RSS start / middle / end",
                " / ".join(kb(memory[k]["rss_kb"]) for k in ("start", "middle", "end")),
            ]
        )
    if "soak" in results:
        k = results["soak"]
        rows.append([f"soak: {k['minutes']:g} min, requests", str(sum(k["requests"].values()))])
        rows.append(["soak: request errors", str(sum(k["errors"].values()))])
        for name, p in k["processes"].items():
            rss = " -> ".join(kb(p[key]["rss_kb"]) for key in ("start", "after_first_interval", "end"))
            fds = " -> ".join(str(p[key]["fds"]) for key in ("start", "after_first_interval", "end"))
            rows.append([f"soak: {name} RSS start -> first sample -> end", rss])
            rows.append([f"soak: {name} open fds start -> first sample -> end", fds])
            files = " -> ".join(
                str(p[key]["fds"] - p[key]["sockets"]) for key in ("start", "after_first_interval", "end")
            )
            rows.append([f"soak: {name} fds other than sockets start -> first sample -> end", files])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load andon's HTTP API with many clients.")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--db", default=DEFAULT_PG_URL, help="PostgreSQL server URL (a schema is made per section)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--worker", choices=("separate", "embedded"), default="separate")
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's slots")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--cancels", type=int, default=1_000)
    parser.add_argument("--sse-clients", type=int, default=100)
    parser.add_argument("--sse-jobs", type=int, default=1_000)
    parser.add_argument("--sse-job-s", type=float, default=0.05, help="how long each job of the sse section runs")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="0: no soak (quick mode: 0.2)")
    parser.add_argument("--soak-clients", type=int, default=8)
    parser.add_argument("--soak-streams", type=int, default=5)
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between two soak samples")
    parser.add_argument("--quick", action="store_true", help="a small run of every section (a smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)} (choose from {', '.join(SECTIONS)})")
    if args.quick:
        args.jobs, args.clients, args.cancels = 300, 10, 100
        args.sse_clients, args.sse_jobs, args.sse_job_s = 10, 50, 0.02
        args.soak_minutes = args.soak_minutes or 0.2
        args.soak_clients, args.soak_streams, args.sample_s = 4, 2, 3.0
    if args.soak_minutes <= 0 and "soak" in sections:
        sections.remove("soak")
    options = Options(
        args.jobs,
        args.clients,
        args.cancels,
        args.sse_clients,
        args.sse_jobs,
        args.sse_job_s,
        args.soak_minutes,
        args.soak_clients,
        args.soak_streams,
        args.sample_s,
        args.seed,
    )
    started = time.monotonic()
    load_before = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}  # Any: JSON values
    loads: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="andon-load-") as folder:
        setup = Setup(
            args.store, args.db, args.worker, args.concurrency, args.out.parent / f"{args.out.stem}-logs", Path(folder)
        )
        for name in sections:
            print(f"{name}...", flush=True)
            section_began = time.monotonic()
            results[name] = asyncio.run(run_section(name, setup, options))
            results[name]["section_seconds"] = round(time.monotonic() - section_began, 1)
            print(f"  done in {results[name]['section_seconds']:g} s", flush=True)
            loads[name] = [round(x, 2) for x in os.getloadavg()]
    took = time.monotonic() - started
    failed = [f"{name}: {check}" for name, r in results.items() for check, ok in r["checks"].items() if not ok]
    meta = {
        "andon": andon.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "store": args.store,
        "worker": args.worker,
        "concurrency": args.concurrency,
        "quick": args.quick,
        "seed": args.seed,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after_section": loads,
        "seconds": round(took, 1),
    }
    print()
    print(f"andon {andon.__version__} under load over HTTP - {args.store}, {args.worker} worker, {meta['cpus']} CPUs")
    print(f"(load average before {meta['load_average_before']}, after each section {loads})")
    print()
    if len(latency_rows(results)) > 1:
        print(table(latency_rows(results)))
        print()
    print(table(figure_rows(results)))
    print()
    for name, result in results.items():
        for check, ok in result["checks"].items():
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {check}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results, "failed": failed}, indent=2) + "\n")
    print(f"\nwritten to {args.out} ({took:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
