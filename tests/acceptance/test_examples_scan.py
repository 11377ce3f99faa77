"""``scan`` end to end: real ffprobe processes on media files made by ffmpeg.

The cancel test puts a FIFO in the folder: ffprobe blocks forever opening it (nobody ever
writes to it), so the only way the job can stop is by killing that ffprobe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import andon
from andon.examples import create_sample_data
from tests.acceptance.examples_support import (
    STOP_BOUND_S,
    assert_cancelled_with_history,
    cancel_and_measure,
    processes_with,
    require_tool,
    use_tmp_as_examples_root,
)
from tests.support import cmdline, descendants, wait_items, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

MakeWorker = Callable[..., andon.Worker]

MEDIA_FILES = {
    "album/silence.wav",
    "album/track-1.flac",
    "album/track-2.m4a",
    "broken.mp3",
    "clip-colour-bars.mkv",
    "clip-test-pattern.mp4",
    "tone-440hz.wav",
}


@pytest.fixture(autouse=True)
def _examples_root(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    use_tmp_as_examples_root(monkeypatch, tmp_path_factory)


@pytest.fixture(scope="module")
def sample_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("ffmpeg", "apt-get install ffmpeg")
    root = tmp_path_factory.mktemp("samples")
    create_sample_data(root, ["media"])
    return root / "media"


@pytest.fixture
def media(sample_media: Path, tmp_path: Path) -> Path:
    """A copy of the sample media this test may add to."""
    require_tool("ffprobe", "apt-get install ffmpeg")
    return Path(shutil.copytree(sample_media, tmp_path / "media"))


def test_scan_emits_one_item_per_media_file(client: andon.Client, make_worker: MakeWorker, media: Path) -> None:
    make_worker()
    job = client.wait_finished(client.submit("scan", {"folder": str(media)}).id, timeout=30)

    assert job.status is andon.JobStatus.SUCCEEDED, job.error
    assert job.result == {
        "folder": str(media),
        "files": len(MEDIA_FILES),
        "failed": 1,
        "skipped": 1,
        "skipped_by_extension": {".txt": 1},
        "skipped_examples": ["README.txt"],
    }
    assert (job.progress_done, job.progress_total) == (len(MEDIA_FILES), len(MEDIA_FILES))
    items = {item.data["path"]: item.data for item in client.results(job.id)}
    assert set(items) == MEDIA_FILES, "README.txt is not media and is skipped"
    clip = items["clip-test-pattern.mp4"]
    assert clip["duration"] == pytest.approx(2.0, abs=0.1)
    assert clip["codec"] == "mpeg4"
    assert clip["size"] == (media / "clip-test-pattern.mp4").stat().st_size
    assert [stream["type"] for stream in clip["streams"]] == ["video", "audio"]
    assert clip["streams"][0]["width"] == 320
    assert items["album/track-1.flac"]["codec"] == "flac"
    assert "error" in items["broken.mp3"], "a file ffprobe cannot read is reported, and the scan goes on"


def test_cancel_kills_the_ffprobe_in_flight(client: andon.Client, make_worker: MakeWorker, media: Path) -> None:
    fifo = media / "zz-stuck.wav"  # sorted last: every real file is probed before it
    os.mkfifo(fifo)
    make_worker()
    job = client.submit("scan", {"folder": str(media)})
    # Every real file is done and the ffprobe on the FIFO is running (blocked for good).
    wait_items(client, job.id, len(MEDIA_FILES))
    wait_until(lambda: bool(processes_with(str(fifo))), 10, "ffprobe to open the FIFO")
    assert client.get(job.id).status is andon.JobStatus.RUNNING

    stopped, _timing = cancel_and_measure(client, job.id, "scan", lambda: not processes_with(str(fifo)))

    cancel = assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    assert cancel.stop_method is andon.StopMethod.COOPERATIVE, "ctx.run raised once the probe was killed"
    assert not processes_with(str(fifo)), "no ffprobe is left"
    assert not [pid for pid in descendants(os.getpid()) if "ffprobe" in cmdline(pid)], "no ffprobe at all is left"
    items = client.results(stopped.id)
    assert {item.data["path"] for item in items} == MEDIA_FILES, "the files probed before are kept, the FIFO is not"
    assert stopped.progress_done == len(MEDIA_FILES)
    assert stopped.progress_total == len(MEDIA_FILES) + 1


def test_a_scan_cancelled_mid_run_resumes_at_the_file_it_was_probing(
    client: andon.Client, make_worker: MakeWorker, media: Path
) -> None:
    fifo = media / "c-stuck.wav"  # in the middle of the sorted files
    os.mkfifo(fifo)
    order = sorted([*MEDIA_FILES, fifo.name], key=lambda name: media / name)
    before = order[: order.index(fifo.name)]
    make_worker()
    job = client.submit("scan", {"folder": str(media)})
    wait_items(client, job.id, len(before))
    wait_until(lambda: bool(processes_with(str(fifo))), 10, "ffprobe to open the FIFO")

    stopped, _timing = cancel_and_measure(client, job.id, "scan (mid-run)", lambda: not processes_with(str(fifo)))

    assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    assert [item.data["path"] for item in client.results(job.id)] == before
    assert stopped.checkpoint is not None
    assert stopped.checkpoint.state == {"done": len(before), "failed": 1, "last": before[-1]}
    # What blocked the probe is gone now: a resume probes it (an empty file, so it fails).
    fifo.unlink()
    fifo.write_bytes(b"")
    client.resume(job.id)
    finished = client.wait_finished(job.id, timeout=30)

    assert finished.status is andon.JobStatus.SUCCEEDED, finished.error
    assert [item.data["path"] for item in client.results(job.id)] == order, "every file probed once, in order"
    assert finished.result is not None
    assert (finished.result["files"], finished.result["failed"]) == (len(order), 2), "broken.mp3 and the empty wav"
    assert (finished.progress_done, finished.progress_total) == (len(order), len(order))


def test_a_probe_that_hangs_without_a_cancel_times_out_and_the_scan_goes_on(
    client: andon.Client, make_worker: MakeWorker, media: Path, tmp_path: Path
) -> None:
    # Only the FIFO can time out: ffprobe blocks opening it for good, whatever the timeout.
    # The one real file after it gets a timeout no probe of a short wav needs even on a
    # loaded machine, so which probe times out never depends on how fast ffprobe is.
    folder = tmp_path / "hangs"
    folder.mkdir()
    os.mkfifo(folder / "a-stuck.wav")
    shutil.copy(media / "tone-440hz.wav", folder / "b-tone.wav")
    make_worker()
    job = client.submit("scan", {"folder": str(folder), "probe_timeout_s": 3.0})
    done = client.wait_finished(job.id, timeout=45)

    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    assert done.result is not None
    assert (done.result["files"], done.result["failed"], done.result["skipped"]) == (2, 1, 0)
    items = {item.data["path"]: item.data for item in client.results(job.id)}
    assert items["a-stuck.wav"]["error"] == "ffprobe did not answer within 3 s"
    assert "error" not in items["b-tone.wav"], "the scan went on after the hung probe"
    assert items["b-tone.wav"]["codec"] == "pcm_s16le"
    assert not processes_with(str(folder / "a-stuck.wav"))


# -- what scan recognises, and what it says it skipped ------------------------------------

_SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5"]
_PATTERN = ["-f", "lavfi", "-i", "testsrc=duration=0.5:size=176x144:rate=25"]

# Real files in the types users found skipped (issue 13), each made with an encoder built
# into ffmpeg itself, so any build can make them.
WIDER_MEDIA = {
    "more/sound.aiff": _SINE,
    "more/sound.au": _SINE,
    "more/sound.caf": _SINE,
    "more/sound.oga": [*_SINE, "-c:a", "flac"],
    "more/sound.mka": [*_SINE, "-c:a", "flac"],
    "more/sound.wma": [*_SINE, "-c:a", "wmav2"],
    "more/sound.ac3": [*_SINE, "-c:a", "ac3"],
    "more/sound.wv": [*_SINE, "-c:a", "wavpack"],
    "more/video.mpg": [*_PATTERN, "-c:v", "mpeg1video"],
    "more/video.m4v": [*_PATTERN, "-c:v", "mpeg4"],
    "more/video.wmv": [*_PATTERN, "-c:v", "wmv2"],
    "more/video.flv": [*_PATTERN, "-c:v", "flv1"],
    "more/video.ts": [*_PATTERN, "-c:v", "mpeg2video"],
    "more/video.3gp": [*_PATTERN, "-c:v", "h263"],
    "more/still.png": [*_PATTERN, "-frames:v", "1"],
    "more/STILL.GIF": [*_PATTERN, "-frames:v", "1"],
}


@pytest.fixture(scope="module")
def wider_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("ffmpeg", "apt-get install ffmpeg")
    root = tmp_path_factory.mktemp("wider")
    for name, args in WIDER_MEDIA.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        command = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args, str(path)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    for name in ("notes.txt", "notes-2.txt", "cover.xcf", "Makefile", "more/.hidden", "more/data.csv"):
        (root / name).write_text("not media\n")
    return root


def test_scan_probes_the_common_media_types_and_counts_what_it_skipped(
    client: andon.Client, make_worker: MakeWorker, wider_media: Path, tmp_path: Path
) -> None:
    require_tool("ffprobe", "apt-get install ffmpeg")
    folder = Path(shutil.copytree(wider_media, tmp_path / "wider"))
    make_worker()
    job = client.wait_finished(client.submit("scan", {"folder": str(folder)}).id, timeout=60)

    assert job.status is andon.JobStatus.SUCCEEDED, job.error
    items = {item.data["path"]: item.data for item in client.results(job.id)}
    assert set(items) == set(WIDER_MEDIA), "every common media type is probed, whatever its case"
    assert {path: item["error"] for path, item in items.items() if "error" in item} == {}
    assert items["more/sound.wma"]["codec"] == "wmav2"
    assert items["more/video.mpg"]["codec"] == "mpeg1video"
    assert job.result == {
        "folder": str(folder),
        "files": len(WIDER_MEDIA),
        "failed": 0,
        "skipped": 6,
        "skipped_by_extension": {".txt": 2, "(none)": 2, ".xcf": 1, ".csv": 1},
        "skipped_examples": ["Makefile", "cover.xcf", "more/.hidden", "more/data.csv", "notes-2.txt"],
    }


def test_the_skipped_summary_stays_short(client: andon.Client, make_worker: MakeWorker, tmp_path: Path) -> None:
    require_tool("ffprobe", "apt-get install ffmpeg")
    folder = tmp_path / "docs"
    folder.mkdir()
    for index in range(30):
        (folder / f"file-{index:02}.x{index % 15}").write_text("not media\n")
    make_worker()
    job = client.wait_finished(client.submit("scan", {"folder": str(folder)}).id, timeout=30)

    assert job.status is andon.JobStatus.SUCCEEDED, job.error
    assert job.result is not None
    assert (job.result["files"], job.result["failed"], job.result["skipped"]) == (0, 0, 30)
    by_extension = job.result["skipped_by_extension"]
    assert len(by_extension) == 11, "the ten most common extensions, then the rest together"
    assert by_extension["(other)"] == 10
    assert sum(by_extension.values()) == 30
    assert len(job.result["skipped_examples"]) == 5


def test_extensions_replace_the_default_set(client: andon.Client, make_worker: MakeWorker, media: Path) -> None:
    make_worker()
    job = client.submit("scan", {"folder": str(media), "extensions": ["WAV", ".flac"]})
    done = client.wait_finished(job.id, timeout=30)

    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    assert done.result is not None
    assert {item.data["path"] for item in client.results(job.id)} == {
        "album/silence.wav",
        "album/track-1.flac",
        "tone-440hz.wav",
    }
    assert (done.result["files"], done.result["skipped"]) == (3, len(MEDIA_FILES) - 3 + 1)


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([""], "'' is not a file extension"),
        (["tar.gz"], "'tar.gz' is not a file extension"),
        (["a/b"], "'a/b' is not a file extension"),
        ([], "the list is empty"),
    ],
)
def test_bad_extensions_fail_the_job_with_a_clear_error(
    client: andon.Client, make_worker: MakeWorker, media: Path, extensions: list[str], message: str
) -> None:
    make_worker()
    job = client.submit("scan", {"folder": str(media), "extensions": extensions})
    done = client.wait_finished(job.id, timeout=30)

    assert done.status is andon.JobStatus.FAILED
    assert done.error is not None
    assert done.error.type == "ValueError"
    assert message in done.error.message
