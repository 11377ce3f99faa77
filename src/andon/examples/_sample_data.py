"""Local inputs for the example kinds, made on this machine (no network).

``create_sample_data(folder)`` writes three parts, each in its own sub-folder:

* ``media/``  short audio and video clips made with ``ffmpeg`` (for ``scan``), plus a file
  that is not media and one that only looks like it (for the error path);
* ``papers/`` text PDFs on a few topics made with fpdf2 (for ``papers``);
* ``site/``   a small static website with several levels of links (for ``crawl``; serve it
  with ``python -m http.server -d site``).
"""

from __future__ import annotations

import enum
import random
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Final

from andon import ConfigurationError

__all__ = ["TOPICS", "SamplePart", "create_sample_data"]


class SamplePart(enum.StrEnum):
    MEDIA = "media"
    PAPERS = "papers"
    SITE = "site"


TOPICS: Final[dict[str, list[str]]] = {
    "astronomy": ["telescope", "galaxy", "star", "orbit", "redshift", "planet", "spectrum", "nebula", "supernova"],
    "biology": ["cell", "protein", "gene", "enzyme", "membrane", "organism", "evolution", "species", "metabolism"],
    "computing": ["algorithm", "compiler", "memory", "processor", "network", "database", "software", "cache", "kernel"],
    "economics": ["market", "price", "inflation", "demand", "supply", "trade", "interest", "labour", "tax"],
}
"""Topic -> its vocabulary: what the sample papers are written from, and the default
categories of the ``papers`` kind (so it classifies the sample papers out of the box)."""

_FILLER: Final = [
    "results",
    "method",
    "study",
    "data",
    "model",
    "analysis",
    "measurement",
    "evidence",
    "approach",
    "effect",
]


def create_sample_data(folder: str | Path, parts: Collection[SamplePart | str] = tuple(SamplePart)) -> dict[str, int]:
    """Write the sample inputs under ``folder`` (made if missing; existing files are replaced).

    Args:
        folder: where to write; each part gets its own sub-folder.
        parts: which parts to write (default: all).

    Returns:
        The number of files written per part.

    Raises:
        ConfigurationError: a tool the part needs (``ffmpeg``, fpdf2) is not installed.
    """
    root = Path(folder)
    chosen = [SamplePart(part) for part in parts]
    makers = {SamplePart.MEDIA: _make_media, SamplePart.PAPERS: _make_papers, SamplePart.SITE: _make_site}
    written: dict[str, int] = {}
    for part in chosen:
        target = root / part.value
        target.mkdir(parents=True, exist_ok=True)
        written[part.value] = makers[part](target)
    return written


# -- media ----------------------------------------------------------------------------

_CLIPS: Final[dict[str, list[str]]] = {
    # Only encoders built into every ffmpeg (mpeg4, aac, flac, pcm), so any build works.
    "clip-test-pattern.mp4": [
        *("-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=2"),
        *("-c:v", "mpeg4", "-c:a", "aac", "-shortest"),
    ],
    "clip-colour-bars.mkv": [
        *("-f", "lavfi", "-i", "smptebars=duration=3:size=640x360:rate=30"),
        *("-f", "lavfi", "-i", "sine=frequency=1000:duration=3"),
        *("-c:v", "mpeg4", "-c:a", "flac", "-shortest"),
    ],
    "tone-440hz.wav": ["-f", "lavfi", "-i", "sine=frequency=440:duration=1.5", "-c:a", "pcm_s16le"],
    "album/track-1.flac": ["-f", "lavfi", "-i", "sine=frequency=523:duration=2", "-c:a", "flac"],
    "album/track-2.m4a": ["-f", "lavfi", "-i", "sine=frequency=659:duration=2.5", "-c:a", "aac"],
    "album/silence.wav": ["-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", "1", "-c:a", "pcm_s16le"],
}


def _make_media(folder: Path) -> int:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigurationError(
            "ffmpeg is not installed, so the sample media cannot be made "
            "(Debian/Ubuntu: apt-get install --no-install-recommends ffmpeg)"
        )
    for name, args in _CLIPS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", *args, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigurationError(f"ffmpeg could not make {name}: {done.stderr.strip()}")
    (folder / "README.txt").write_text("Not media: scan skips files without a media extension.\n")
    # A media extension but not media: ffprobe fails on it and scan reports the error.
    (folder / "broken.mp3").write_bytes(b"this is not an mp3 file\n" * 8)
    return len(_CLIPS) + 2


# -- papers ---------------------------------------------------------------------------

_SENTENCES: Final = [
    "In this {filler} we examine how the {a} relates to the {b}.",
    "Our {filler} shows that the {a} changes when the {b} is measured again.",
    "Previous work on the {a} ignored the role of the {b}.",
    "We describe a new {filler} for the {a} and compare it with the {b}.",
    "The {a} and the {b} were observed over a long period.",
    "These {filler} suggest that the {a} depends on the {b} more than expected.",
]


def _make_papers(folder: Path) -> int:
    try:
        from fpdf import FPDF
    except ImportError:
        raise ConfigurationError("fpdf2 is not installed: pip install 'andon[examples]'") from None
    count = 0
    for topic, words in TOPICS.items():
        for number in (1, 2):
            rng = random.Random(f"{topic}-{number}")
            first, second = rng.sample(words, 2)
            title = f"On the {first} and the {second}: a study in {topic}"
            pdf = FPDF()
            pdf.set_title(title)
            pdf.set_author("andon sample-data")
            pdf.set_auto_page_break(True, margin=15)
            for page in range(rng.randint(2, 3)):
                pdf.add_page()
                if page == 0:
                    pdf.set_font("Helvetica", "B", 15)
                    pdf.multi_cell(0, 8, title)
                    pdf.ln(4)
                pdf.set_font("Helvetica", size=11)
                for _ in range(5):
                    pdf.multi_cell(0, 6, _paragraph(rng, words))
                    pdf.ln(3)
            pdf.output(str(folder / f"{topic}-{number}.pdf"))
            count += 1
    return count


def _paragraph(rng: random.Random, words: list[str]) -> str:
    sentences = []
    for _ in range(rng.randint(4, 7)):
        template = rng.choice(_SENTENCES)
        sentences.append(template.format(a=rng.choice(words), b=rng.choice(words), filler=rng.choice(_FILLER)))
    return " ".join(sentences)


# -- site -----------------------------------------------------------------------------

_SECTIONS: Final = ["news", "guides", "reference"]
_ARTICLES_PER_SECTION: Final = 4


def _make_site(folder: Path) -> int:
    pages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    pages["index.html"] = (
        "Sample site",
        [(f"{section}/index.html", section.title()) for section in _SECTIONS]
        + [("about.html", "About"), ("missing.html", "A broken link"), ("https://example.org/", "Elsewhere")],
    )
    pages["about.html"] = ("About this site", [("index.html", "Home")])
    for section in _SECTIONS:
        articles = [f"{section}/article-{n}.html" for n in range(1, _ARTICLES_PER_SECTION + 1)]
        pages[f"{section}/index.html"] = (
            f"{section.title()}",
            [("index.html", "Home")] + [(path, f"Article {n}") for n, path in enumerate(articles, 1)],
        )
        for n, path in enumerate(articles, 1):
            sibling = articles[n % len(articles)]
            pages[path] = (f"{section.title()}: article {n}", [(f"{section}/index.html", "Up"), (sibling, "Next")])
    for path, (title, links) in pages.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_html(path, title, links))
    return len(pages)


def _html(path: str, title: str, links: list[tuple[str, str]]) -> str:
    depth = path.count("/")
    items = []
    for href, text in links:
        # Site-internal links are written relative to the page, as a real site would.
        relative = href if "://" in href else "../" * depth + href
        items.append(f'    <li><a href="{relative}">{text}</a></li>')
    body = "\n".join(items)
    return (
        "<!doctype html>\n"
        f"<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
        f"<body>\n  <h1>{title}</h1>\n  <ul>\n{body}\n  </ul>\n</body></html>\n"
    )
