"""``scan`` end to end: real ffprobe processes on media files made by ffmpeg.

The cancel test puts a FIFO in the folder: ffprobe blocks forever opening it (nobody ever
writes to it), so the only way the job can stop is by killing that ffprobe.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import andon
from andon.examples import create_sample_data
from tests.acceptance.examples_support import (
    assert_cancelled_with_history,
    cancel_and_measure,
    descendants,
    processes_with,
    require_tool,
    use_tmp_as_examples_root,
    wait_items,
)
from tests.support import cmdline, wait_until

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
    assert job.result == {"folder": str(media), "files": len(MEDIA_FILES), "failed": 1}
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

    cancel = assert_cancelled_with_history(client, stopped, bound_s=1.0)
    assert cancel.stop_method is andon.StopMethod.COOPERATIVE, "ctx.run raised once the probe was killed"
    assert not processes_with(str(fifo)), "no ffprobe is left"
    assert not [pid for pid in descendants(os.getpid()) if "ffprobe" in cmdline(pid)], "no ffprobe at all is left"
    items = client.results(stopped.id)
    assert {item.data["path"] for item in items} == MEDIA_FILES, "the files probed before are kept, the FIFO is not"
    assert stopped.progress_done == len(MEDIA_FILES)
    assert stopped.progress_total == len(MEDIA_FILES) + 1


def test_a_probe_that_hangs_without_a_cancel_times_out_and_the_scan_goes_on(
    client: andon.Client, make_worker: MakeWorker, media: Path
) -> None:
    os.mkfifo(media / "b-stuck.wav")
    make_worker()
    job = client.submit("scan", {"folder": str(media), "probe_timeout_s": 0.5})
    done = client.wait_finished(job.id, timeout=30)

    assert done.status is andon.JobStatus.SUCCEEDED, done.error
    assert done.result == {"folder": str(media), "files": len(MEDIA_FILES) + 1, "failed": 2}
    items = {item.data["path"]: item.data for item in client.results(job.id)}
    assert items["b-stuck.wav"]["error"] == "ffprobe did not answer within 0.5 s"
    assert set(items) == {*MEDIA_FILES, "b-stuck.wav"}
    assert not processes_with(str(media / "b-stuck.wav"))
