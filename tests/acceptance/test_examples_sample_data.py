"""``andon sample-data DIR``: the local inputs of the example kinds, made without network."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from andon.cli import cli
from tests.acceptance.examples_support import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_sample_data_makes_media_papers_and_site(tmp_path: Path) -> None:
    require_tool("ffmpeg", "apt-get install ffmpeg")
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["media", "papers", "site"]
    clips = sorted(path.name for path in (tmp_path / "media").rglob("*") if path.suffix in (".mp4", ".mkv", ".wav"))
    assert clips == ["clip-colour-bars.mkv", "clip-test-pattern.mp4", "silence.wav", "tone-440hz.wav"]
    assert (tmp_path / "media" / "clip-test-pattern.mp4").stat().st_size > 1000
    assert len(list((tmp_path / "papers").glob("*.pdf"))) == 8
    assert (tmp_path / "papers" / "biology-1.pdf").read_bytes().startswith(b"%PDF-")
    assert (tmp_path / "site" / "index.html").read_text().count("<a href=") == 6
    assert f"andon submit scan folder={tmp_path / 'media'}" in result.stdout


def test_sample_data_can_make_some_parts_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path), "--only", "site, papers"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["papers", "site"]


def test_sample_data_rejects_an_unknown_part(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path), "--only", "videos"])
    assert result.exit_code == 2
    assert "parts are media, papers and site" in result.output
    assert not tmp_path.joinpath("videos").exists()


def test_sample_data_without_ffmpeg_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(cli, ["sample-data", str(tmp_path / "out"), "--only", "media"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: ffmpeg is not installed, so the sample media cannot be made "
        "(Debian/Ubuntu: apt-get install --no-install-recommends ffmpeg)"
    ]
