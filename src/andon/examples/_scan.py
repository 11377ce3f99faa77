"""``scan``: a media library scan, one ``ffprobe`` child process per file.

What a cancel does: the ``ffprobe`` in flight gets SIGTERM at once (``ctx.run`` started it
in its own process group), ``ctx.run`` raises ``andon.Cancelled``, and no further file is
probed. The items of the files probed before are kept. A file on which ``ffprobe`` hangs
(a FIFO, a stalled network mount) therefore cannot hold a cancel up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final

from andon import ConfigurationError, Context
from andon.examples import app
from andon.examples._confinement import ExamplesFolder, checked_folder

__all__ = ["MEDIA_EXTENSIONS", "scan"]

MEDIA_EXTENSIONS: Final = frozenset(
    [".aac", ".avi", ".flac", ".m4a", ".mkv", ".mov", ".mp3", ".mp4", ".ogg", ".opus", ".wav", ".webm"]
)
"""What ``scan`` probes unless the job names its own ``extensions``."""


@app.job("scan", grace=1.0)
def scan(
    ctx: Context,
    folder: ExamplesFolder,
    extensions: list[str] | None = None,
    probe_timeout_s: float = 60.0,
) -> dict[str, Any]:  # Any: a JSON summary
    """Probe every media file under folder (inside the examples root) with ffprobe; one item per file."""
    # Checked again here, because the worker's examples root (not the submitter's) is what
    # counts; and the folder read is the resolved one that was checked.
    root = checked_folder("folder", folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    if shutil.which("ffprobe") is None:
        raise ConfigurationError("ffprobe is not installed (Debian: apt-get install --no-install-recommends ffmpeg)")
    wanted = MEDIA_EXTENSIONS if extensions is None else {f".{ext.lower().lstrip('.')}" for ext in extensions}
    files = _media_files(root, wanted)
    ctx.progress(0, len(files), f"found {len(files)} media files")
    failed = 0
    for done, path in enumerate(files, 1):
        # ctx.run is the checkpoint here: a cancel stops the probe in flight and raises.
        item = _probe(ctx, path, root, probe_timeout_s)
        failed += "error" in item
        ctx.emit(item)
        ctx.progress(done, len(files), str(path.relative_to(root)))
    return {"folder": str(root), "files": len(files), "failed": failed}


def _media_files(root: Path, extensions: Collection[str]) -> list[Path]:
    """Media files under ``root``, sorted so that runs are repeatable. Listing opens no
    file, so a FIFO in the tree cannot block it (only ffprobe will)."""
    found: list[Path] = []
    for directory, _subdirs, names in os.walk(root):
        found.extend(Path(directory) / name for name in names if Path(name).suffix.lower() in extensions)
    return sorted(found)


def _probe(ctx: Context, path: Path, root: Path, timeout_s: float) -> dict[str, Any]:  # Any: a JSON item
    item: dict[str, Any] = {"path": str(path.relative_to(root)), "size": path.lstat().st_size}
    command = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        completed = ctx.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        # A hung probe without a cancel: ctx.run killed it; report the file and go on.
        return {**item, "error": f"ffprobe did not answer within {timeout_s:g} s"}
    if completed.returncode != 0:
        return {**item, "error": completed.stderr.strip() or f"ffprobe exited with code {completed.returncode}"}
    return {**item, **_summary(json.loads(completed.stdout))}


def _summary(probe: dict[str, Any]) -> dict[str, Any]:  # Any: ffprobe's JSON, and a JSON item
    """The fields worth keeping from ffprobe's (long) answer."""
    container = probe.get("format", {})
    streams = []
    for stream in probe.get("streams", []):
        summary = {"type": stream.get("codec_type"), "codec": stream.get("codec_name")}
        if stream.get("codec_type") == "video":
            summary.update(width=stream.get("width"), height=stream.get("height"))
        elif stream.get("codec_type") == "audio":
            summary.update(sample_rate=_number(stream.get("sample_rate")), channels=stream.get("channels"))
        streams.append(summary)
    return {
        "format": container.get("format_name"),
        "duration": _number(container.get("duration")),
        "bit_rate": _number(container.get("bit_rate")),
        "codec": next((s["codec"] for s in streams if s["type"] == "video"), None)
        or next((s["codec"] for s in streams if s["type"] == "audio"), None),
        "streams": streams,
    }


def _number(text: Any) -> float | None:  # Any: ffprobe gives numbers as strings, or leaves them out
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
