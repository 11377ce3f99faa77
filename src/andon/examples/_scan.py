"""``scan``: a media library scan, one ``ffprobe`` child process per file.

What a cancel does: the ``ffprobe`` in flight gets SIGTERM at once (``ctx.run`` started it
in its own process group), ``ctx.run`` raises ``andon.Cancelled``, and no further file is
probed. The items of the files probed before are kept. A file on which ``ffprobe`` hangs
(a FIFO, a stalled network mount) therefore cannot hold a cancel up.

Resume: after each file a checkpoint stores how many files are done (and failed) and the
last one's path. The files are probed in sorted order, so a resumed scan goes on with the
files that sort after that path - the file whose probe was stopped first - and probes none
twice. A file added since, sorting before it, is not probed (submit the job again for that).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final

from andon import ConfigurationError, Context
from andon.examples import app
from andon.examples._confinement import ExamplesFolder, checked_folder

__all__ = ["AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "MEDIA_EXTENSIONS", "VIDEO_EXTENSIONS", "scan"]


def _suffixes(words: str) -> frozenset[str]:
    return frozenset(f".{word}" for word in words.split())


AUDIO_EXTENSIONS: Final = _suffixes(
    "aac ac3 aif aifc aiff amr ape au caf dts eac3 flac m4a m4b m4r mka mp2 mp3"
    " mpa mpc oga ogg opus ra snd spx tta voc w64 wav weba wma wv"
)
VIDEO_EXTENSIONS: Final = _suffixes(
    "3g2 3gp asf avi divx dv f4v flv m1v m2t m2ts m2v m4v mj2 mkv mov mp4 mpe mpeg"
    " mpg mts mxf nut ogm ogv qt rm rmvb ts vob webm wmv wtv y4m"
)
IMAGE_EXTENSIONS: Final = _suffixes("avif bmp dpx exr gif heic heif j2k jp2 jpeg jpg pbm pgm png ppm tga tif tiff webp")
MEDIA_EXTENSIONS: Final = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
"""What ``scan`` probes unless the job names its own ``extensions``: the audio, video and
image containers ffprobe commonly reads. Any other file is counted as skipped."""

_SKIPPED_KINDS_SHOWN: Final = 10
_SKIPPED_EXAMPLES_SHOWN: Final = 5
_NO_EXTENSION: Final = "(none)"


@app.job("scan", grace=1.0)
def scan(
    ctx: Context,
    folder: ExamplesFolder,
    extensions: list[str] | None = None,
    probe_timeout_s: float = 60.0,
) -> dict[str, Any]:  # Any: a JSON summary
    """Probe every media file under folder (inside the examples root) with ffprobe; one item per file.

    The result counts the files probed, those ffprobe could not read (``failed``) and those
    without a media extension that were not probed (``skipped``, by extension, with a few
    names). ``extensions`` replaces the default set (e.g. ``["mp3", "flac"]``).
    """
    # Checked again here, because the worker's examples root (not the submitter's) is what
    # counts; and the folder read is the resolved one that was checked.
    root = checked_folder("folder", folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    if shutil.which("ffprobe") is None:
        raise ConfigurationError("ffprobe is not installed (Debian: apt-get install --no-install-recommends ffmpeg)")
    wanted = MEDIA_EXTENSIONS if extensions is None else _checked_extensions(extensions)
    files, skipped = _media_files(root, wanted)
    done, failed = (ctx.resumed["done"], ctx.resumed["failed"]) if ctx.resumed else (0, 0)
    last = root / ctx.resumed["last"] if ctx.resumed else None
    ctx.progress(done, len(files), f"found {len(files)} media files; skipped {len(skipped)} other files")
    for path in files if last is None else [path for path in files if path > last]:
        # ctx.run is the cancel point here: a cancel stops the probe in flight and raises.
        item = _probe(ctx, path, root, probe_timeout_s)
        failed += "error" in item
        done += 1
        ctx.emit(item)
        ctx.checkpoint({"done": done, "failed": failed, "last": item["path"]})
        ctx.progress(done, len(files), item["path"])
    return {"folder": str(root), "files": len(files), "failed": failed, **_skipped_summary(skipped, root)}


def _checked_extensions(extensions: list[str]) -> frozenset[str]:
    """The job's own ``extensions`` as lower-case suffixes (``"MP3"``, ``".mp3"`` -> ``.mp3``)."""
    wanted = set()
    for extension in extensions:
        bare = extension.strip().lower().removeprefix(".")
        if not bare or "." in bare or "/" in bare or os.sep in bare:
            raise ValueError(f"extensions: {extension!r} is not a file extension (write e.g. 'mp3' or '.mp3')")
        wanted.add(f".{bare}")
    if not wanted:
        raise ValueError("extensions: the list is empty, so nothing would be probed; leave it out for the default")
    return frozenset(wanted)


def _media_files(root: Path, extensions: Collection[str]) -> tuple[list[Path], list[Path]]:
    """The media files under ``root`` and the other files, both sorted so that runs are
    repeatable. Listing opens no file, so a FIFO in the tree cannot block it (only ffprobe will)."""
    found: list[Path] = []
    skipped: list[Path] = []
    for directory, _subdirs, names in os.walk(root):
        for name in names:
            (found if Path(name).suffix.lower() in extensions else skipped).append(Path(directory) / name)
    return sorted(found), sorted(skipped)


def _skipped_summary(skipped: list[Path], root: Path) -> dict[str, Any]:  # Any: a JSON summary
    """How many files were not probed, by extension (the most common ones), with a few names,
    so that a summary saying ``failed: 0`` cannot hide files the scan never looked at."""
    by_extension = Counter(path.suffix.lower() or _NO_EXTENSION for path in skipped)
    shown = dict(by_extension.most_common(_SKIPPED_KINDS_SHOWN))
    if len(by_extension) > len(shown):
        shown["(other)"] = len(skipped) - sum(shown.values())
    return {
        "skipped": len(skipped),
        "skipped_by_extension": shown,
        "skipped_examples": [str(path.relative_to(root)) for path in skipped[:_SKIPPED_EXAMPLES_SHOWN]],
    }


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
