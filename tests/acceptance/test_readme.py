"""The README runs as written: its shell and Python blocks, taken from README.md itself, on a
fresh copy of the checkout, in one shell, top to bottom, as a new user would type them.

How the blocks are read (the rules a README edit must keep):
- ```sh blocks run as they are; ```console blocks run the lines after their ``$ `` prompt.
- A ```python block whose first line is ``# name.py`` is that file: it is written, not run.
  Any other ```python block is run with the ``python`` on the PATH at that point.
- ``<!-- readme-test: skip: why -->`` on the line before a block leaves it out (with why).
- Two commands are never typed here: ``./scripts/test`` is the command running this test,
  and ``./scripts/serve`` serves until Ctrl-C, so it is started in the background, checked
  while it answers, then given SIGINT (as the README says) and must exit 0.
Then the records the README's commands left in the fresh copy's database are checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import andon

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVE_URL = "http://127.0.0.1:8000"

_FENCE = re.compile(r"^```(\w*)\s*$")
_SKIP = re.compile(r"^<!-- readme-test: skip: (.+) -->$")
_FILE = re.compile(r"^# ([\w./-]+\.py)$")
_RUNNABLE = {"sh", "console", "python"}


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    text: str
    skip: str | None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with the skip reason its annotation gives."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = _SKIP.match(before.strip())
        blocks.append(Block(start + 1, opened.group(1), "\n".join(body) + "\n", skip.group(1) if skip else None))
        i += 1
    return blocks


def shell_of(block: Block) -> str:
    """The shell text that does what ``block`` says."""
    if block.lang == "console":
        return "".join(line[2:] + "\n" for line in block.text.splitlines() if line.startswith("$ "))
    if block.lang == "python":
        first = block.text.splitlines()[0]
        named = _FILE.match(first)
        if named:
            return f"cat > {named.group(1)} <<'ANDON_README_EOF'\n{block.text}ANDON_README_EOF\n"
        return f"python - <<'ANDON_README_EOF'\n{block.text}ANDON_README_EOF\n"
    out = []
    for line in block.text.splitlines():
        command = line.split("#", 1)[0].strip()
        if command == "./scripts/test":
            out.append("echo 'readme-test: ./scripts/test is what runs this test'")
        elif command == "./scripts/serve":
            out.append("readme_serve")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


# -e and -u as a careful user would; no pipefail, which a user's shell does not have
# (`andon results ... | head` ends andon with a broken pipe, as it would any Unix tool).
_PRELUDE = f"""\
set -eu
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
readme_serve() {{
    ./scripts/serve &
    local pid=$!
    for _ in $(seq 600); do
        python3 -c "import urllib.request; urllib.request.urlopen('{SERVE_URL}/api/v1/info', timeout=2)" \\
            2>/dev/null && break
        kill -0 $pid 2>/dev/null || {{ echo "readme-test: ./scripts/serve exited early"; return 1; }}
        sleep 0.5
    done
    python3 -c "import urllib.request; print(urllib.request.urlopen('{SERVE_URL}/api/v1/jobs').read().decode())" \\
        > serve-jobs.json
    kill -INT $pid
    wait $pid
    echo "readme-test: ./scripts/serve exited $?"
}}
"""


def fresh_copy(dest: Path) -> Path:
    """The checkout's tracked files as they are now (uncommitted edits included), no venv."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if not name:
            continue
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def clean_env() -> dict[str, str]:
    """A new user's shell: this test's venv, andon settings and Python paths left out."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDON_", "PYTHON", "VIRTUAL_ENV", "PYTEST"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def test_every_code_block_is_run_or_says_why_not() -> None:
    blocks = [b for b in readme_blocks(README.read_text()) if b.lang in _RUNNABLE]
    assert len(blocks) >= 10
    for block in blocks:
        if block.skip is not None:
            assert len(block.skip) > 10, f"README line {block.line}: say why the block is not run"
    unknown = [b for b in readme_blocks(README.read_text()) if b.lang and b.lang not in _RUNNABLE | {"text"}]
    assert unknown == [], "a block in a language this test cannot run: mark it text or teach the test"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_readme_runs_as_written_on_a_fresh_checkout(tmp_path: Path) -> None:
    checkout = fresh_copy(tmp_path / "andon")
    script = _PRELUDE + "".join(
        f"\n# --- README.md line {b.line}\n" + shell_of(b)
        for b in readme_blocks(README.read_text())
        if b.lang in _RUNNABLE and b.skip is None
    )
    (tmp_path / "readme.sh").write_text(script)
    started = time.monotonic()
    run = subprocess.run(
        ["bash", str(tmp_path / "readme.sh")],
        cwd=checkout,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=840,
        start_new_session=True,
    )
    output = run.stdout + run.stderr
    (tmp_path / "readme.log").write_text(output)
    took = time.monotonic() - started
    assert run.returncode == 0, f"the README's commands failed after {took:.0f} s:\n{output[-6000:]}"

    # Two commands: ./scripts/serve answered with the example jobs it queues, and stopped cleanly.
    served = json.loads((checkout / "serve-jobs.json").read_text())
    assert {job["kind"] for job in served["items"]} >= {"count"}, served
    assert "readme-test: ./scripts/serve exited 0" in output

    with andon.SqliteStore(str(checkout / "andon.db")) as store:
        jobs = andon.Client(store).list_jobs(limit=1000).items
        by_kind: dict[str, list[andon.Job]] = {}
        for job in jobs:
            by_kind.setdefault(job.kind, []).append(job)
        # Quick start: the checksums job ran to the end, one item per file of ./docs; the one
        # scheduled ten minutes ahead and cancelled ("Later: scheduled jobs") never started.
        [checksums] = [job for job in by_kind["checksums"] if job.started_at is not None]
        [scheduled] = [job for job in by_kind["checksums"] if job.started_at is None]
        assert scheduled.status is andon.JobStatus.CANCELLED, scheduled
        assert scheduled.cancel is not None
        assert scheduled.cancel.stop_method is andon.StopMethod.WITHDRAWN, scheduled.cancel
        assert scheduled.started_at is None
        files = [p for p in (checkout / "docs").rglob("*") if p.is_file()]
        assert checksums.status is andon.JobStatus.SUCCEEDED, checksums
        assert checksums.items_count == len(files)
        # Both crunch jobs (the CLI's and the Python snippet's) were stopped by SIGTERM.
        crunches = by_kind["crunch"]
        assert len(crunches) == 2
        for job in crunches:
            assert job.status is andon.JobStatus.CANCELLED, job
            assert job.cancel is not None
            assert job.cancel.stop_method is andon.StopMethod.TERMINATED, job.cancel
        # The examples: each submitted job ran and ended as the README says.
        for kind in ("scan", "papers", "crawl"):
            [example] = by_kind[kind]
            assert example.status is andon.JobStatus.SUCCEEDED, (example, example.error)
            assert example.items_count > 0
    assert "stop_method=<StopMethod.TERMINATED: 'terminated'>" in output
    assert "cancelled" in output
