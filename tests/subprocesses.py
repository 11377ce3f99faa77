"""Subprocesses the tests start: output read without ever blocking on a full pipe, and
``andon worker`` as a process of its own.

Two ways to keep a child's output, for two needs: :class:`LineReader` reads its pipes in
threads, for a test that waits for a line; :class:`LoggedProcess` sends it to a log file,
for a process whose output is only read when something fails (or polled, as a whole).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Literal

from tests.support import wait_until


class LineReader:
    """Reads a process's stdout and stderr pipes (those it has) in daemon threads, keeping
    every line (newline included); the lines of the ``watched`` one can be waited for."""

    def __init__(self, popen: subprocess.Popen[str], watched: Literal["stdout", "stderr"] = "stdout") -> None:
        self._popen = popen
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []
        for name, stream, into in (("stdout", popen.stdout, self.stdout), ("stderr", popen.stderr, self.stderr)):
            if stream is not None:
                thread = threading.Thread(target=self._read, args=(stream, into, name == watched), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _read(self, stream: IO[str], into: list[str], announce: bool) -> None:
        with stream:
            for line in stream:
                into.append(line)
                if announce:
                    self._lines.put(line)

    def wait_for_line(self, matches: Callable[[str], bool], timeout: float, what: str) -> str:
        """Wait for a line of the watched pipe that ``matches``; returns it.

        Lines before it are passed over. Fails naming ``what`` after ``timeout`` seconds, or
        at once if the process has exited and every line it wrote has been read.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Short slices, so that a process that exits is noticed without waiting out the timeout.
                line = self._lines.get(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if self._popen.poll() is not None and not any(thread.is_alive() for thread in self._threads):
                    code = self._popen.returncode
                    raise AssertionError(
                        f"no {what}: pid {self._popen.pid} exited with {code}:\n{self.output()}"
                    ) from None
                if time.monotonic() >= deadline:
                    pid = self._popen.pid
                    raise AssertionError(f"no {what} from pid {pid} in {timeout:g} s:\n{self.output()}") from None
                continue
            if matches(line):
                return line

    def output(self) -> str:
        """Everything read so far: stdout, then stderr."""
        return "".join(self.stdout) + "".join(self.stderr)

    def join(self, timeout: float) -> None:
        """Wait for the pipes to close (the process, and any child holding them, has exited)."""
        for thread in self._threads:
            thread.join(timeout)


class LoggedProcess:
    """A subprocess whose stdout and stderr go to one log file (never a full pipe)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
        self.process = process
        self.log = log
        self.name = name

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
        """:func:`tests.support.wait_until`, failing at once if the process exits first; a
        failure shows the log."""

        def met() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode} before {what}")
            return condition()

        try:
            wait_until(met, timeout, what, interval)
        except AssertionError as error:
            raise AssertionError(f"{error}:\n{self.output()}") from None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``signum`` and wait for the process to exit; returns its exit code.

        Raises:
            AssertionError: it did not exit within ``timeout`` seconds (it is killed then).
        """
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout:g} s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def popen_logged(
    command: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``cwd`` with ``env`` (default: this process's), unbuffered, without
    stdin, its stdout and stderr written to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
        )


class WorkerProcess(LoggedProcess):
    """One ``python -m andon.cli worker`` process; its output goes to ``<folder>/<name>.log``."""

    def __init__(
        self,
        folder: Path,
        db: str,
        *,
        name: str = "worker",
        concurrency: int = 4,
        app: str | None = None,
        marker: str | None = None,
    ) -> None:
        """``marker``: put in the worker's environment, so every process it starts carries it
        (see ``tests.faults.processes.marked_processes``)."""
        log = folder / f"{name}.log"
        command = [sys.executable, "-m", "andon.cli", "worker", "--db", db]
        command += ["--concurrency", str(concurrency), "--shutdown-grace", "1"]
        env = None if marker is None else {**os.environ, "ANDON_TEST_MARKER": marker}
        if app is not None:
            # An app of the tests: importable from the checkout, whatever the folder.
            command += ["--app", app]
            root = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
            env = {**(env or os.environ), "PYTHONPATH": path}
        super().__init__(popen_logged(command, log, folder, env), log, "andon worker")

    def wait_started(self, timeout: float) -> None:
        """Wait for the worker's banner (it then runs jobs)."""
        self.wait_until(lambda: "andon worker " in self.output(), timeout, "andon worker to start")
