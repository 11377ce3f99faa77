"""``andon.CommandFailed``: what ``ctx.run`` raises for a child that failed, and its message.

The message is what a failed job shows in the API, the CLI and the dashboard, so it must
say which command failed, how, and what the command said about it (issue 13).
"""

from __future__ import annotations

import pickle
import signal
import subprocess

import pytest

import andon
from andon._cancel import CancelToken
from andon._context import Context


def test_it_is_an_andon_error_and_a_called_process_error() -> None:
    assert issubclass(andon.CommandFailed, andon.AndonError)
    assert issubclass(andon.CommandFailed, subprocess.CalledProcessError)
    error = andon.CommandFailed(2, ["convert", "a.jpg"], "out", "err")
    assert (error.returncode, error.cmd, error.stdout, error.stderr) == (2, ["convert", "a.jpg"], "out", "err")


def test_the_message_names_the_command_the_code_and_the_end_of_stderr() -> None:
    command = ["convert", "my photo.jpg", "-resize", "64x64"]
    error = andon.CommandFailed(1, command, None, "first\nconvert: no decode delegate\n")
    assert str(error) == (
        "command `convert 'my photo.jpg' -resize 64x64` exited with code 1; the end of its stderr:\n"
        "first\nconvert: no decode delegate"
    )


def test_bytes_stderr_is_decoded_and_only_its_tail_is_kept() -> None:
    stderr = b"".join(b"line %d\n" % i for i in range(100)) + b"bad \xff byte\n"
    message = str(andon.CommandFailed(1, [b"tool"], None, stderr))
    assert message.startswith("command `tool` exited with code 1; the end of its stderr:\n...\n")
    assert message.endswith("line 99\nbad \ufffd byte")
    assert "line 90" not in message


def test_a_long_stderr_line_is_cut_to_its_end() -> None:
    message = str(andon.CommandFailed(1, "tool", None, "x" * 5000 + "THE END"))
    assert message.endswith("THE END")
    assert len(message) < 1100


def test_an_uncaptured_or_empty_stderr_is_said_so() -> None:
    assert str(andon.CommandFailed(3, ["false"])) == (
        "command `false` exited with code 3 (its stderr was not captured; pass capture_output=True to see it here)"
    )
    silent = andon.CommandFailed(3, ["false"], b"", b"  \n")
    assert str(silent) == "command `false` exited with code 3 and wrote nothing to stderr"


def test_a_signal_is_named() -> None:
    assert str(andon.CommandFailed(-signal.SIGKILL, ["sleep", "9"], None, "")).startswith(
        "command `sleep 9` was killed by signal SIGKILL"
    )
    assert "killed by signal 99" in str(andon.CommandFailed(-99, ["x"]))


def test_a_long_command_is_shortened() -> None:
    message = str(andon.CommandFailed(1, ["tool", *(f"file{i}" for i in range(200))]))
    assert message.startswith("command `tool file0 file1")
    assert "...` exited with code 1" in message
    assert len(message) < 320


def test_it_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(andon.CommandFailed(4, ["a"], "o", "e")))
    assert isinstance(error, andon.CommandFailed)
    assert str(error) == "command `a` exited with code 4; the end of its stderr:\ne"


@pytest.mark.parametrize("cmd", [None, 42, [object()]])
def test_any_command_value_gives_a_message(cmd: object) -> None:
    assert "exited with code 1" in str(andon.CommandFailed(1, cmd))


# -- ctx.run raises it by default ----------------------------------------------------------


class _Sink:
    def emit(self, at: float, encoded: str) -> None:
        pass

    def progress(self, done: float, total: float | None, message: str | None) -> None:
        pass

    def child_started(self, pid: int) -> None:
        pass

    def checkpoint(self, at: float, encoded: str) -> None:
        pass


def _context() -> Context:
    return Context(job_id="j", kind="k", attempt=1, params={}, token=CancelToken(), sink=_Sink(), child_grace_s=0.5)


def test_ctx_run_checks_the_exit_code_unless_told_not_to() -> None:
    ctx = _context()
    try:
        with pytest.raises(andon.CommandFailed, match=r"^command `sh -c 'echo nope >&2; exit 5'` exited with code 5"):
            ctx.run(["sh", "-c", "echo nope >&2; exit 5"], stderr=subprocess.PIPE)
        completed = ctx.run(["sh", "-c", "exit 5"], check=False)
        assert completed.returncode == 5
        assert ctx.run(["true"]).returncode == 0
    finally:
        ctx._close()


def test_ctx_run_refuses_arguments_it_cannot_honour() -> None:
    ctx = _context()
    try:
        with pytest.raises(TypeError, match="check must be True or False, not 'no'"):
            ctx.run(["true"], check="no")  # type: ignore[arg-type]  # the wrong type on purpose
        with pytest.raises(ValueError, match="capture_output=True or stdout/stderr, not both"):
            ctx.run(["true"], capture_output=True, stderr=subprocess.DEVNULL)
    finally:
        ctx._close()
