"""The example kinds touch only what this machine allows, whoever submits them.

``andon serve`` runs the example app by default and any ``user`` token may submit its kinds,
so ``scan`` and ``papers`` read and write only inside the examples root, and ``crawl`` browses
only loopback hosts and the hosts ``ANDON_CRAWL_ALLOW`` names. A param outside that is refused
before a job exists (422 over HTTP, one error line in the CLI), naming the rule; a page that
redirects or points the browser elsewhere does not get it there. Real parts throughout: the
API in-process with a user token, the CLI through Typer's runner, ffprobe, pypdf, Chromium.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

import andon
from andon.api import create_app
from andon.cli import cli
from andon.examples import app as example_app
from andon.examples import create_sample_data
from andon.examples._crawl import CHROMIUM
from tests.acceptance.examples_support import require_tool
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

MakeWorker = Callable[..., andon.Worker]
Json = dict[str, Any]  # Any: decoded JSON bodies

BASE = "http://127.0.0.1:8000"
ROOT_ENV = "ANDON_EXAMPLES_ROOT"
ALLOW_ENV = "ANDON_CRAWL_ALLOW"
ELSEWHERE = "elsewhere.localhost"
"""A host that is not on the crawl's list but that Chromium would reach: it resolves every
``*.localhost`` name to loopback itself, so the test's own server answers for it and sees
whether the browser ever asked."""

FOLDER_PARAMS = [("scan", "folder"), ("papers", "folder"), ("papers", "output_dir")]
ESCAPES = ["absolute", "dot-dot", "symlink"]
OFF_LIMITS_URLS = [
    "http://example.org/",
    "https://192.0.2.1:8443/index.html",
    "http://10.0.0.1/",
    "http://[2001:db8::1]/",
    "http://127.0.0.1.example.org/",
    f"http://{ELSEWHERE}/",
]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's examples root (``ANDON_EXAMPLES_ROOT``), with an empty folder per kind, and
    a folder beside it with something worth stealing."""
    root = tmp_path / "root"
    for name in ("media", "papers"):
        (root / name).mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.wav").write_text("not for the example kinds\n")
    monkeypatch.setenv(ROOT_ENV, str(root))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    return root


@pytest.fixture
def api(store: andon.SqliteStore) -> Iterator[TestClient]:
    """The API as a ``user`` token sees it. No worker: a job that got through would stay queued."""
    user = andon.Client(store).create_token("alice", "user").token
    app = create_app(store, example_app, auth_cache_s=0.0, stream_keepalive_s=0.2)
    with TestClient(app, base_url=BASE, headers={"authorization": f"Bearer {user}"}) as http:
        yield http


def escape(root: Path, how: str) -> str:
    """A folder outside ``root`` (its sibling ``outside``), written the way ``how`` says."""
    if how == "absolute":
        return "/etc"
    if how == "dot-dot":
        return f"{root}/media/../../outside"
    link = root / "media" / "shortcut"
    link.symlink_to(root.parent / "outside")
    return str(link)


def params_with(root: Path, kind: str, param: str, value: str) -> dict[str, str]:
    """Valid params of ``kind`` but for ``param``."""
    return {"folder": str(root / ("media" if kind == "scan" else "papers")), param: value}


def root_rule(*roots: Path) -> str:
    where = f"the examples root {roots[0].resolve()}"
    if len(roots) > 1:
        where = "one of the examples roots " + ", ".join(str(root.resolve()) for root in roots)
    return f"must be inside {where} (set {ROOT_ENV} to allow others)"


def submit_over_http(api: TestClient, kind: str, params: Json) -> Json:
    """Submit expecting a refusal: 422 ``invalid_params``, and no job anywhere."""
    response = api.post("/api/v1/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 422, response.text
    error: Json = response.json()["error"]
    assert error["code"] == "invalid_params"
    assert api.get("/api/v1/jobs").json()["items"] == [], "the refused job was never created"
    return error


def submit_with_cli(db_path: Path, kind: str, params: dict[str, str]) -> str:
    """``andon submit`` expecting a refusal: exit 1 and one error line (returned), no traceback."""
    args = [f"{key}={value}" for key, value in params.items()]
    result = CliRunner().invoke(cli, ["submit", kind, *args, "--db", f"sqlite:///{db_path}"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    with andon.connect(f"sqlite:///{db_path}") as client:
        assert client.list_jobs().items == [], "the refused job was never created"
    return lines[0]


# -- folders --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ESCAPES)
@pytest.mark.parametrize(("kind", "param"), FOLDER_PARAMS)
def test_a_folder_outside_the_root_is_422_over_http_naming_the_rule(
    api: TestClient, root: Path, kind: str, param: str, how: str
) -> None:
    error = submit_over_http(api, kind, params_with(root, kind, param, escape(root, how)))
    assert error["problems"] == [f"{param}: {root_rule(root)}"]


@pytest.mark.parametrize("how", ESCAPES)
@pytest.mark.parametrize(("kind", "param"), FOLDER_PARAMS)
def test_a_folder_outside_the_root_is_one_error_line_in_the_cli(
    db_path: Path, root: Path, kind: str, param: str, how: str
) -> None:
    line = submit_with_cli(db_path, kind, params_with(root, kind, param, escape(root, how)))
    assert line == f"error: invalid params for {kind!r}: {param}: {root_rule(root)}"


def test_folders_inside_the_root_still_work(
    client: andon.Client, make_worker: MakeWorker, root: Path, tmp_path: Path
) -> None:
    require_tool("ffprobe", "apt-get install ffmpeg")
    create_sample_data(tmp_path / "made", ["media", "papers"])
    (tmp_path / "made" / "media").rename(root / "media" / "library")
    (root / "media" / "linked").symlink_to(root / "media" / "library")  # a link that stays inside
    for pdf in (tmp_path / "made" / "papers").glob("*.pdf"):
        pdf.rename(root / "papers" / pdf.name)
    make_worker()

    scan = client.submit("scan", {"folder": f"{root}/papers/../media/linked"})
    papers = client.submit("papers", {"folder": str(root / "papers"), "output_dir": str(root / "papers" / "out")})

    scanned = client.wait_finished(scan.id, timeout=30)
    assert scanned.status is andon.JobStatus.SUCCEEDED, scanned.error
    assert scanned.result is not None
    assert scanned.result["files"] == 7
    catalogued = client.wait_finished(papers.id, timeout=30)
    assert catalogued.status is andon.JobStatus.SUCCEEDED, catalogued.error
    assert catalogued.result is not None
    assert catalogued.result["catalog"] == str(root / "papers" / "out" / "catalog.md")


def test_the_default_root_is_samples_in_the_working_directory(
    client: andon.Client, make_worker: MakeWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the README does: `andon sample-data ./samples`, then submit from the same folder.
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    create_sample_data(tmp_path / "samples", ["papers"])
    make_worker()

    job = client.submit("papers", {"folder": "samples/papers", "output_dir": "samples/out"})
    done = client.wait_finished(job.id, timeout=30)
    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    assert (tmp_path / "samples" / "out" / "catalog.md").exists()

    with pytest.raises(andon.InvalidParams) as refused:
        client.submit("papers", {"folder": "samples/papers", "output_dir": str(tmp_path)})
    assert refused.value.problems == [f"output_dir: {root_rule(tmp_path / 'samples')}"]


def test_the_environment_variable_widens_the_root_to_several_folders(
    client: andon.Client, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(andon.InvalidParams):
        client.submit("scan", {"folder": str(other)})

    monkeypatch.setenv(ROOT_ENV, f"{root}{os.pathsep}{other}")
    assert client.submit("scan", {"folder": str(other)}).status is andon.JobStatus.QUEUED
    assert client.submit("scan", {"folder": str(root / "media")}).status is andon.JobStatus.QUEUED
    with pytest.raises(andon.InvalidParams) as refused:
        client.submit("scan", {"folder": str(tmp_path / "outside")})
    assert refused.value.problems == [f"folder: {root_rule(root, other)}"]


def test_the_workers_own_root_decides_when_the_job_runs(
    client: andon.Client, make_worker: MakeWorker, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The submitter's root let the job in; the worker's (narrower) root is what counts on
    # the worker's machine, so the handler checks again before it reads anything.
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    job = client.submit("scan", {"folder": str(tmp_path / "outside")})
    monkeypatch.setenv(ROOT_ENV, str(root))
    make_worker()

    failed = client.wait_finished(job.id, timeout=30)
    assert failed.status is andon.JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "PermissionError"
    assert failed.error.message == f"folder: {root_rule(root)}"
    assert client.results(job.id) == [], "nothing outside the root was read"


# -- crawl hosts ------------------------------------------------------------------------


@pytest.mark.parametrize("url", OFF_LIMITS_URLS)
def test_a_crawl_of_a_host_off_the_list_is_422_over_http_and_nothing_is_fetched(
    api: TestClient, root: Path, url: str
) -> None:
    error = submit_over_http(api, "crawl", {"start_url": url})
    [problem] = error["problems"]
    assert problem.startswith("start_url: must be on a loopback host (127.0.0.0/8, ::1, localhost) or on a host")
    assert ALLOW_ENV in problem


@pytest.mark.parametrize("url", OFF_LIMITS_URLS[:2])
def test_a_crawl_of_a_host_off_the_list_is_one_error_line_in_the_cli(db_path: Path, root: Path, url: str) -> None:
    line = submit_with_cli(db_path, "crawl", {"start_url": url})
    assert line.startswith("error: invalid params for 'crawl': start_url: must be on a loopback host")
    assert ALLOW_ENV in line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "start_url: not an http(s) URL: 'file:///etc/passwd'"),
        ("http://example.org@127.0.0.1/", "start_url: must not contain user info or backslashes"),
        ("http://example.org\\@127.0.0.1/", "start_url: must not contain user info or backslashes"),
    ],
)
def test_a_crawl_url_that_is_not_plainly_http_is_refused(
    client: andon.Client, root: Path, url: str, problem: str
) -> None:
    with pytest.raises(andon.InvalidParams) as refused:
        client.submit("crawl", {"start_url": url})
    assert refused.value.problems == [problem]
    assert client.list_jobs().items == []


def test_a_malformed_allow_list_is_a_configuration_error(
    client: andon.Client, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each name becomes part of the browser's command line: nothing but a host name may get in.
    monkeypatch.setenv(ALLOW_ENV, "docs.example.org, MAP * 192.0.2.1")
    with pytest.raises(andon.ConfigurationError, match=f"{ALLOW_ENV}: 'map \\* 192.0.2.1' is not a host name"):
        client.submit("crawl", {"start_url": "http://127.0.0.1:8000/"})


class TwoHostSite(http.server.ThreadingHTTPServer):
    """A site on 127.0.0.1 that tries to take the browser to ``elsewhere.localhost`` (served
    by this same server, so any request the browser makes for it is seen here)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TwoHostHandler)
        self.requests: list[tuple[str, str]] = []
        """``(host, path)`` of every request."""
        self.extra_html = ""
        """Added to every page."""

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def hosts(self) -> set[str]:
        return {host.rsplit(":", 1)[0] for host, _path in self.requests}


class _TwoHostHandler(http.server.BaseHTTPRequestHandler):
    server: TwoHostSite

    def do_GET(self) -> None:
        self.server.requests.append((self.headers.get("host", ""), self.path))
        elsewhere = f"http://{ELSEWHERE}:{self.server.port}"
        if self.path in ("/away", "/slow.png"):
            if self.path == "/slow.png":
                time.sleep(1.0)  # holds the page's load event up, so its scripts have time to run
            self.send_response(302 if self.path == "/away" else 404)
            self.send_header("location", f"{elsewhere}/secret")
            self.end_headers()
            return
        body = (
            f"<!doctype html><title>{self.path}</title>"
            f"<img src='{elsewhere}/pixel.png'>"
            f"<a href='/away'>away</a> <a href='/page.html'>page</a> <a href='{elsewhere}/link'>link</a>"
            f"{self.server.extra_html}"
        )
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:  # Any: as the base class
        """Quiet: the test reads ``server.requests`` instead."""


@pytest.fixture
def two_host_site() -> Iterator[TwoHostSite]:
    require_tool(CHROMIUM, "apt-get install chromium")
    server = TwoHostSite()
    thread = threading.Thread(target=server.serve_forever, name="two-host-site", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_redirect_or_a_page_request_to_a_host_off_the_list_is_not_fetched(
    client: andon.Client, make_worker: MakeWorker, root: Path, two_host_site: TwoHostSite
) -> None:
    make_worker()
    job = client.submit("crawl", {"start_url": f"http://127.0.0.1:{two_host_site.port}/index.html"})
    done = client.wait_finished(job.id, timeout=60)

    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    items = {item.data["url"].split(str(two_host_site.port))[-1]: item.data for item in client.results(job.id)}
    assert set(items) == {"/index.html", "/away", "/page.html"}
    assert "error" in items["/away"], "the redirect led nowhere"
    assert f"http://{ELSEWHERE}:{two_host_site.port}/link" in items["/index.html"]["links"]
    assert ("127.0.0.1", "/away") in {(h.rsplit(":", 1)[0], p) for h, p in two_host_site.requests}
    assert two_host_site.hosts() == {"127.0.0.1"}, "neither the redirect nor the image reached the other host"


def outside_address() -> str:
    """An IPv4 address of this machine that is not loopback (skip the test if there is none).

    A UDP ``connect`` only picks the route; it sends nothing.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("this machine has no address but loopback")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this machine has no address but loopback")
    return address


def test_a_page_cannot_reach_an_address_off_the_list_by_http_or_webrtc(
    client: andon.Client, make_worker: MakeWorker, root: Path, two_host_site: TwoHostSite
) -> None:
    # A page's scripts run in the crawler's browser: an image, a fetch() and a WebRTC STUN
    # request (UDP, which no resolver rule sees) aimed at this machine's own non-loopback
    # address, where the test listens, must all stay unanswered because they are never sent.
    address = outside_address()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind((address, 0))
        tcp.listen()
        tcp.settimeout(0.5)
        udp.bind((address, 0))
        udp.settimeout(0.5)
        http_url = f"http://{address}:{tcp.getsockname()[1]}"
        stun = f"stun:{address}:{udp.getsockname()[1]}"
        two_host_site.extra_html = (
            f"<img src='{http_url}/pixel.png'><img src='/slow.png'>"
            f"<script>fetch('{http_url}/fetched').catch(() => {{}});"
            f"const pc = new RTCPeerConnection({{iceServers: [{{urls: '{stun}'}}]}});"
            "pc.createDataChannel('x'); pc.createOffer().then((offer) => pc.setLocalDescription(offer));</script>"
        )
        make_worker()
        job = client.submit("crawl", {"start_url": f"http://127.0.0.1:{two_host_site.port}/", "max_pages": 1})
        done = client.wait_finished(job.id, timeout=60)
        assert done.status is andon.JobStatus.SUCCEEDED, done.error
        assert ("127.0.0.1", "/slow.png") in {(h.rsplit(":", 1)[0], p) for h, p in two_host_site.requests}

        with pytest.raises(TimeoutError):
            tcp.accept()
        with pytest.raises(TimeoutError):
            udp.recvfrom(2048)


@contextlib.contextmanager
def worker_process(db_path: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``andon worker`` in a process of its own, with this test's environment.

    Not an in-process worker: a process-isolated job is forked from a server process that
    kept the environment it started with, so a variable set later in this test would not
    reach the job. An operator sets it before starting the worker, as here.
    """
    with log.open("w") as output:
        command = [sys.executable, "-m", "andon.cli", "worker", "--db", f"sqlite:///{db_path}", "--kinds", "crawl"]
        process = subprocess.Popen([*command, "--shutdown-grace", "0"], stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_allow_list_lets_the_crawl_reach_a_named_host(
    client: andon.Client,
    db_path: Path,
    root: Path,
    tmp_path: Path,
    two_host_site: TwoHostSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ALLOW_ENV, f"docs.example.org, {ELSEWHERE.upper()}")
    job = client.submit("crawl", {"start_url": f"http://{ELSEWHERE}:{two_host_site.port}/index.html"})
    log = tmp_path / "worker.log"
    with worker_process(db_path, log) as worker:
        # Stop waiting early, with its output, if the worker dies.
        wait_until(lambda: client.get(job.id).is_terminal or worker.poll() is not None, 60, "the crawl to end")
    done = client.get(job.id)

    assert done.status is andon.JobStatus.SUCCEEDED, (done.error, log.read_text())
    paths = {path for host, path in two_host_site.requests if host.startswith(f"{ELSEWHERE}:")}
    assert {"/index.html", "/page.html", "/pixel.png", "/secret", "/link"} <= paths, paths
