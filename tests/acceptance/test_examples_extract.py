"""``extract`` end to end, against a fake language model: a real HTTP server on 127.0.0.1.

The server speaks the OpenAI chat-completions format, answers the first few requests at
once and holds the rest, and watches each held connection: it records the moment the client
closes it. So the test sees, from the server's side, that a cancel aborted the requests in
flight and that no row was sent after it.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.examples._extract import _ask, _endpoint, _RowsDone, parse_properties
from tests.acceptance.examples_support import (
    STOP_BOUND_S,
    assert_cancelled_with_history,
    cancel_and_measure,
)
from tests.support import wait_items, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

MakeWorker = Callable[..., andon.Worker]

API_KEY = "test-key"
MODEL = "fake-model"


@dataclass
class Request:
    text: str
    received_at: float
    outcome: str = "pending"
    """``pending``, ``answered``, or ``closed by client`` (the client gave up on the answer)."""
    ended_at: float | None = None


@dataclass
class FakeModel:
    """What the server saw, and how it behaves (``answer_first`` quick answers, then hold)."""

    answer_first: int = 1_000_000
    hold_s: float = 30.0
    requests: list[Request] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # Any: JSON
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def in_flight(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.outcome == "pending"]

    def count(self, outcome: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if outcome is None or r.outcome == outcome)


def answer_for(text: str) -> dict[str, Any]:  # Any: JSON
    """The fake model's "extraction": a year and a city, found with regular expressions."""
    year = re.search(r"\b(1[0-9]{3}|20[0-9]{2})\b", text)
    city = re.search(r"\bin ([A-Z][a-z]+)", text)
    return {"year": int(year.group(1)) if year else None, "city": city.group(1) if city else None, "extra": 1}


class _Handler:
    """One connection: HTTP/1.1 with keep-alive, read by hand so a hold can watch the socket."""

    def __init__(self, conn: socket.socket, model: FakeModel) -> None:
        self.conn = conn
        self.model = model
        self.file = conn.makefile("rb")

    def serve(self) -> None:
        with self.conn, self.file:
            while self.serve_one():
                pass

    def serve_one(self) -> bool:
        request_line = self.file.readline()
        if not request_line:
            return False
        headers = {}
        while (line := self.file.readline().decode()) not in ("\r\n", "\n", ""):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(self.file.read(int(headers["content-length"])))
        text = body["messages"][-1]["content"]
        model = self.model
        with model.lock:
            request = Request(text, time.time())
            model.requests.append(request)
            model.headers.append(headers)
            model.bodies.append(body)
            number = len(model.requests)
            model.max_in_flight = max(model.max_in_flight, sum(r.outcome == "pending" for r in model.requests))
        if number > model.answer_first and self.client_closed_within(model.hold_s):
            with model.lock:
                request.outcome, request.ended_at = "closed by client", time.time()
            return False
        message = {"role": "assistant", "content": json.dumps(answer_for(text))}
        payload = json.dumps(
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        ).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        self.conn.sendall(head.encode() + payload)
        with model.lock:
            request.outcome, request.ended_at = "answered", time.time()
        return True

    def client_closed_within(self, seconds: float) -> bool:
        """Hold the answer back; ``True`` as soon as the client closes the connection."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.model.stopping.is_set():
            readable, _, _ = select.select([self.conn], [], [], 0.01)
            if readable and self.conn.recv(1, socket.MSG_PEEK) == b"":
                return True
        return False


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    model = FakeModel()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # so the acceptor sees `stopping` (close() does not wake accept())
    port = listener.getsockname()[1]
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not model.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            thread = threading.Thread(target=_Handler(conn, model).serve, daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, name="fake-model", daemon=True)
    acceptor.start()
    monkeypatch.setenv("ANDON_LLM_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ANDON_LLM_MODEL", MODEL)
    monkeypatch.setenv("ANDON_LLM_API_KEY", API_KEY)
    yield model
    model.stopping.set()
    acceptor.join(5)
    listener.close()
    for thread in threads:
        thread.join(5)


ROWS = [f"Row {n}: the bridge in Paris was finished in {1800 + n}." for n in range(12)]


def test_extract_gathers_properties_with_bounded_concurrency(
    client: andon.Client, make_worker: MakeWorker, fake_model: FakeModel
) -> None:
    make_worker()
    rows: list[Any] = [*ROWS[:5], {"id": 6, "note": "Opened in Lyon in 1901"}]  # Any: JSON rows
    params = {"rows": rows, "properties": ["year", "city"], "concurrency": 2}
    job = client.wait_finished(client.submit("extract", params).id, timeout=30)

    assert job.status is andon.JobStatus.SUCCEEDED, job.error
    assert job.result == {"rows": 6, "extracted": 6, "failed": 0}
    found = {item.data["row"]: item.data["properties"] for item in client.results(job.id)}
    assert found == {n: {"year": 1800 + n, "city": "Paris"} for n in range(5)} | {5: {"year": 1901, "city": "Lyon"}}
    assert fake_model.count() == 6
    assert fake_model.max_in_flight <= 2, "never more requests at once than the concurrency"
    assert all(headers["authorization"] == f"Bearer {API_KEY}" for headers in fake_model.headers)
    assert {body["model"] for body in fake_model.bodies} == {MODEL}
    assert "year, city" in fake_model.bodies[0]["messages"][0]["content"]


def cancel_with_three_rows_in_flight(
    client: andon.Client, make_worker: MakeWorker, fake_model: FakeModel, what: str
) -> tuple[andon.Job, list[Request]]:
    """Run ``extract`` over ``ROWS`` three at a time; the model answers four rows, then holds
    the next three, and the job is cancelled. Returns the stopped job and the held requests."""
    fake_model.answer_first = 4
    make_worker()
    job = client.submit("extract", {"rows": ROWS, "properties": ["year", "city"], "concurrency": 3})
    wait_items(client, job.id, 4)
    wait_until(lambda: len(fake_model.in_flight()) == 3, 10, "three requests held by the server")
    held = fake_model.in_flight()
    stopped, _timing = cancel_and_measure(client, job.id, what, lambda: not fake_model.in_flight())
    return stopped, held


def test_cancel_aborts_the_requests_in_flight_and_sends_no_more(
    client: andon.Client, make_worker: MakeWorker, fake_model: FakeModel
) -> None:
    stopped, held = cancel_with_three_rows_in_flight(client, make_worker, fake_model, "extract")

    cancel = assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    assert cancel.stop_method is andon.StopMethod.ASYNC, "the task was cancelled at its await"
    assert [r.outcome for r in held] == ["closed by client"] * 3, "every request in flight was aborted"
    for request in held:
        assert request.ended_at is not None
        assert request.ended_at - cancel.requested_at < 1.0
    time.sleep(0.3)  # a quiet period: nothing may arrive once the job has stopped
    assert fake_model.count() == 4 + 3, "the rows not yet sent never were"
    items = [item.data for item in client.results(stopped.id)]
    assert len(items) == 4
    assert all(item["properties"]["city"] == "Paris" for item in items), "the properties gathered are kept"
    assert stopped.progress_done == 4
    assert stopped.progress_total == len(ROWS)

    # The same through the REST API, as a dashboard would read them.
    with TestClient(create_app(client), base_url="http://127.0.0.1:8000") as http:
        answer = http.get(f"/api/v1/jobs/{stopped.id}/results")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["cancelled"] is True
    assert body["complete"] is True
    assert [item["data"] for item in body["items"]] == items


def test_a_cancelled_extract_resumes_with_the_rows_not_done(
    client: andon.Client, make_worker: MakeWorker, fake_model: FakeModel
) -> None:
    stopped, _held = cancel_with_three_rows_in_flight(client, make_worker, fake_model, "extract (to resume)")

    assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    done_before = {item.data["row"] for item in client.results(stopped.id)}
    assert len(done_before) == 4
    assert stopped.checkpoint is not None
    assert stopped.checkpoint.items == 4
    asked_before = fake_model.count()
    fake_model.answer_first = 1_000_000
    client.resume(stopped.id)
    finished = client.wait_finished(stopped.id, timeout=30)

    assert finished.status is andon.JobStatus.SUCCEEDED, finished.error
    assert finished.result == {"rows": len(ROWS), "extracted": len(ROWS), "failed": 0}
    rows = [item.data["row"] for item in client.results(stopped.id)]
    assert sorted(rows) == list(range(len(ROWS))), "each row once, none missing"
    found = {item.data["row"]: item.data["properties"] for item in client.results(stopped.id)}
    assert found == {n: {"year": 1800 + n, "city": "Paris"} for n in range(len(ROWS))}
    asked_again = sorted(ROWS.index(request.text) for request in fake_model.requests[asked_before:])
    assert asked_again == sorted(set(range(len(ROWS))) - done_before), "only the rows not done are sent again"


def test_the_rows_done_stay_a_mark_and_the_few_above_it() -> None:
    done = _RowsDone()
    for index, failed in [(1, False), (3, True), (0, False), (5, False)]:
        done.add(index, failed=failed)
    assert done.state() == {"below": 2, "above": [3, 5], "extracted": 3, "failed": 1}
    again = _RowsDone.resumed(done.state())
    assert [n for n in range(7) if n not in again] == [2, 4, 6]
    again.add(2, failed=False)
    again.add(4, failed=False)
    assert again.state() == {"below": 6, "above": [], "extracted": 5, "failed": 1}


def test_cancel_while_queued_sends_no_request(
    client: andon.Client, make_worker: MakeWorker, fake_model: FakeModel
) -> None:
    queued = client.submit("extract", {"rows": ROWS, "properties": ["year"]})
    result = client.cancel(queued.id)
    assert result.job.status is andon.JobStatus.CANCELLED
    assert result.job.cancel is not None
    assert result.job.cancel.stop_method is andon.StopMethod.WITHDRAWN

    # A worker now runs a second job to its end: the first one never started.
    make_worker()
    second = client.submit("extract", {"rows": ["the second job, in Rome, 1950"], "properties": ["city"]})
    assert client.wait_finished(second.id, timeout=30).status is andon.JobStatus.SUCCEEDED
    assert [request.text for request in fake_model.requests] == ["the second job, in Rome, 1950"]
    assert client.get(queued.id).status is andon.JobStatus.CANCELLED
    assert client.results(queued.id) == []


def test_without_andon_llm_url_the_job_fails_clearly(
    client: andon.Client, make_worker: MakeWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANDON_LLM_URL", raising=False)
    make_worker()
    job = client.wait_finished(client.submit("extract", {"rows": ["x"], "properties": ["y"]}).id, timeout=30)
    assert job.status is andon.JobStatus.FAILED
    assert job.error is not None
    assert job.error.type == "ConfigurationError"
    assert job.error.message.startswith("ANDON_LLM_URL is not set")


def test_parse_properties_finds_the_json_object_in_an_answer() -> None:
    fenced = 'Here you are:\n```json\n{"year": 1889, "city": "Paris", "tower": true}\n```'
    assert parse_properties(fenced, ["year", "city", "height"]) == {"year": 1889, "city": "Paris", "height": None}
    with pytest.raises(ValueError, match="no JSON object"):
        parse_properties("I cannot help with that.", ["year"])


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a chat completion and records the request target it got."""

    targets: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.targets.append(self.path)
        message = {"role": "assistant", "content": json.dumps({"city": "Oslo"})}
        payload = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test's output is for failures."""


@pytest.fixture
def recording_server() -> Iterator[tuple[int, list[str]]]:
    targets: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"targets": targets})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="recording-server", daemon=True)
    thread.start()
    yield server.server_address[1], targets
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(
    ("suffix", "path", "query"),
    [
        ("/v1?key=K1&api-version=2024-06-01", "/v1/chat/completions", {"key": ["K1"], "api-version": ["2024-06-01"]}),
        ("/v1/?key=K2", "/v1/chat/completions", {"key": ["K2"]}),
        ("/openai/v1/", "/openai/v1/chat/completions", {}),
        ("", "/chat/completions", {}),
    ],
)
def test_the_endpoint_puts_chat_completions_on_the_path_and_keeps_the_query(
    recording_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    path: str,
    query: dict[str, list[str]],
) -> None:
    import httpx

    port, targets = recording_server
    monkeypatch.setenv("ANDON_LLM_URL", f"http://127.0.0.1:{port}{suffix}")
    monkeypatch.delenv("ANDON_LLM_API_KEY", raising=False)
    endpoint, headers = _endpoint()

    async def ask() -> dict[str, Any]:  # Any: a JSON item
        async with httpx.AsyncClient(headers=headers, timeout=10.0) as client:
            return await _ask(client, endpoint, MODEL, ["city"], 0, "a bridge in Oslo")

    assert asyncio.run(ask()) == {"row": 0, "properties": {"city": "Oslo"}}
    assert len(targets) == 1
    received = urlsplit(targets[0])
    assert received.path == path
    assert parse_qs(received.query) == query


def test_an_endpoint_that_is_not_a_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANDON_LLM_URL", "http://[::1/v1?key=secret-key")
    with pytest.raises(andon.ConfigurationError, match="not a valid URL") as caught:
        _endpoint()
    assert "secret-key" not in str(caught.value)
