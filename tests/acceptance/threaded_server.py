"""An ASGI app served for real by uvicorn on a free loopback port, in a thread of the test.

For tests that need the real thing between client and app (a real socket, uvicorn's lifespan
handling, a client that knows nothing of ASGI) but not a separate process.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Final

import uvicorn
from starlette.types import ASGIApp

__all__ = ["serve_in_thread"]

START_S: Final = 20.0
STOP_S: Final = 30.0


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` (running its lifespan) until the block ends; yields its base URL.

    Raises:
        AssertionError: the server did not start, or did not stop, in generous time.
    """
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws="none", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="test-uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + START_S
        while not server.started:
            assert thread.is_alive(), "uvicorn ended before it started serving (see the log above)"
            assert time.monotonic() < deadline, f"uvicorn did not start within {START_S} s"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_S)
        listening.close()
        assert not thread.is_alive(), f"uvicorn did not stop within {STOP_S} s"
