"""``papers``: a PDF pipeline in three phases - extract, classify, catalog.

1. **extract**: the text of each PDF, page by page (pypdf), saved as a ``.txt`` file next to
   the catalog; one item per paper.
2. **classify**: each paper gets the category whose keywords weigh most in it, by TF-IDF
   over the whole set of papers (so a word that every paper uses counts for little); one
   item per paper.
3. **catalog**: a Markdown (or CSV) table of every paper, written to a temporary file and
   renamed into place, so a cancel never leaves a half-written catalog behind.

What a cancel does: the handler stops at its next checkpoint - between two pages of a PDF
(one very large PDF cannot hold a cancel up), between two papers in each phase, between two
catalog rows - with ``andon.Cancelled``. The items of the papers done before are kept, and
so are their text files; the progress message says which phase it was in.
"""

from __future__ import annotations

import collections
import csv
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

from andon import Context
from andon.examples import app
from andon.examples._confinement import ExamplesFolder, checked_folder
from andon.examples._sample_data import TOPICS

__all__ = ["classify", "papers"]

_WORD: Final = re.compile(r"[a-z]{3,}")

CatalogFormat = Literal["markdown", "csv"]


@dataclass(slots=True)
class _Paper:
    name: str
    title: str
    pages: int
    words: list[str]
    text_file: str
    category: str = "unclassified"
    score: float = 0.0


@app.job("papers", grace=1.0)
def papers(
    ctx: Context,
    folder: ExamplesFolder,
    categories: dict[str, list[str]] | None = None,
    output_dir: ExamplesFolder | None = None,
    catalog_format: CatalogFormat = "markdown",
    fail_fast: bool = False,
    step_delay_s: float = 0.0,
) -> dict[str, Any]:  # Any: a JSON summary
    """Extract the text of every PDF in folder, classify each paper by keywords (TF-IDF), write a catalog.

    folder and output_dir must be inside the examples root (output_dir defaults to a new
    folder in the temp directory). categories maps a category to its keywords (default: the
    sample-data topics). A PDF that cannot be read is reported as an item and skipped, or
    fails the job with fail_fast=true. step_delay_s pauses after each paper in every phase
    (a checkpoint), to follow the phases.
    """
    # Checked again here, because the worker's examples root (not the submitter's) is what
    # counts; and the folders used are the resolved ones that were checked.
    root = checked_folder("folder", folder)
    out = checked_folder("output_dir", output_dir) if output_dir else _default_output(ctx.job_id)
    files = sorted(root.glob("*.pdf"))
    if not files:
        raise FileNotFoundError(f"no PDF files in {root}")
    out.mkdir(parents=True, exist_ok=True)

    done = _extract_all(ctx, files, out, fail_fast, step_delay_s)
    _classify_all(ctx, done, categories if categories is not None else TOPICS, step_delay_s)
    catalog = _write_catalog(ctx, done, out, catalog_format, step_delay_s)
    counts = dict(collections.Counter(paper.category for paper in done))
    return {"catalog": str(catalog), "papers": len(done), "unreadable": len(files) - len(done), "categories": counts}


def _default_output(job_id: str) -> Path:
    """A folder of the job's own in the temp directory: outside the examples root, but named
    by andon, so the submitter has no say in where it is."""
    return Path(tempfile.gettempdir()) / f"andon-papers-{job_id}"


# -- phase 1 ------------------------------------------------------------------------------


def _extract_all(ctx: Context, files: list[Path], out: Path, fail_fast: bool, delay_s: float) -> list[_Paper]:
    done = []
    for index, path in enumerate(files):
        try:
            paper = _extract(ctx, path, out, index, len(files))
        except Exception as exc:
            # A damaged PDF can raise almost anything from inside pypdf, hence the broad
            # except. It cannot swallow a cancel: andon.Cancelled is not an Exception.
            if fail_fast:
                raise RuntimeError(f"cannot read {path.name}: {exc}") from exc
            ctx.emit({"phase": "extract", "paper": path.name, "error": str(exc)})
        else:
            ctx.emit(
                {
                    "phase": "extract",
                    "paper": paper.name,
                    "title": paper.title,
                    "pages": paper.pages,
                    "words": len(paper.words),
                    "text_file": paper.text_file,
                }
            )
            done.append(paper)
        ctx.progress(index + 1, len(files), f"extract: {index + 1}/{len(files)} papers read")
        ctx.sleep(delay_s)
    return done


def _extract(ctx: Context, path: Path, out: Path, index: int, total: int) -> _Paper:
    from pypdf import PdfReader

    reader = PdfReader(path)
    pages = len(reader.pages)
    texts = []
    for number, page in enumerate(reader.pages, 1):
        # One checkpoint per page: extracting a page takes milliseconds, a whole book takes
        # minutes, and a cancel should not wait for the book.
        ctx.check()
        texts.append(page.extract_text())
        ctx.progress(index, total, f"extract: {path.name} page {number}/{pages}")
    text = "\n".join(texts)
    text_file = out / f"{path.stem}.txt"
    text_file.write_text(text)
    title = str(reader.metadata.title) if reader.metadata and reader.metadata.title else _first_line(text, path)
    return _Paper(path.name, title, pages, _words(text), str(text_file))


def _first_line(text: str, path: Path) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), path.stem)


# -- phase 2 ------------------------------------------------------------------------------


def classify(documents: list[list[str]], categories: dict[str, list[str]]) -> list[tuple[str, float]]:
    """The best category of each document (a list of normalised words) and its score.

    A category's score in a document is the sum of the TF-IDF weights of its keywords there:
    term frequency (share of the document's words) times smoothed inverse document
    frequency. A document where no keyword occurs is ``("unclassified", 0.0)``.
    """
    return list(_classified(documents, categories))


def _classified(documents: list[list[str]], categories: dict[str, list[str]]) -> Iterator[tuple[str, float]]:
    keywords = {name: {_normal(word) for word in words} for name, words in categories.items()}
    document_frequency: collections.Counter[str] = collections.Counter()
    for words in documents:
        document_frequency.update(set(words))
    n = len(documents)

    def idf(term: str) -> float:
        return math.log((1 + n) / (1 + document_frequency[term])) + 1

    for words in documents:
        counts = collections.Counter(words)
        length = max(len(words), 1)
        scores = {name: sum(counts[k] / length * idf(k) for k in terms) for name, terms in keywords.items()}
        best = max(scores, key=lambda name: scores[name], default=None)
        if best is None or scores[best] <= 0:
            yield "unclassified", 0.0
        else:
            yield best, round(scores[best], 6)


def _classify_all(ctx: Context, done: list[_Paper], categories: dict[str, list[str]], delay_s: float) -> None:
    ranked = classify([paper.words for paper in done], categories)
    for index, (paper, (category, score)) in enumerate(zip(done, ranked, strict=True)):
        # Scoring is cheap; the checkpoint per paper is where a slower method (a model call
        # per paper) would spend its time, and where this loop would stop.
        ctx.check()
        paper.category, paper.score = category, score
        ctx.emit({"phase": "classify", "paper": paper.name, "category": category, "score": score})
        ctx.progress(index + 1, len(done), f"classify: {index + 1}/{len(done)} papers classified")
        ctx.sleep(delay_s)


def _words(text: str) -> list[str]:
    return [_normal(word) for word in _WORD.findall(text.lower())]


def _normal(word: str) -> str:
    """A very small stemmer, so that ``galaxies`` matches the keyword ``galaxy``."""
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


# -- phase 3 ------------------------------------------------------------------------------


def _write_catalog(ctx: Context, done: list[_Paper], out: Path, catalog_format: CatalogFormat, delay_s: float) -> Path:
    target = out / ("catalog.csv" if catalog_format == "csv" else "catalog.md")
    rows = [[p.name, p.title, str(p.pages), str(len(p.words)), p.category, f"{p.score:.4f}"] for p in done]
    header = ["paper", "title", "pages", "words", "category", "score"]
    with tempfile.NamedTemporaryFile("w", dir=out, prefix=".catalog-", suffix=".part", delete=False) as part:
        # Until the rename below, the catalog exists only as this temporary file: removed on
        # every exit path, so a cancel leaves the previous catalog (or none), never half of one.
        ctx.on_cleanup(lambda: Path(part.name).unlink(missing_ok=True))
        write_row = _row_writer(part, catalog_format)
        write_row(header)
        for index, row in enumerate(rows):
            ctx.check()
            write_row(row)
            ctx.progress(index + 1, len(rows), f"catalog: {index + 1}/{len(rows)} rows written")
            ctx.sleep(delay_s)
    ctx.check()
    Path(part.name).replace(target)
    return target


def _row_writer(stream: IO[str], catalog_format: CatalogFormat) -> Callable[[list[str]], None]:
    if catalog_format == "csv":
        writer = csv.writer(stream)
        return writer.writerow
    first = True

    def markdown_row(cells: list[str]) -> None:
        nonlocal first
        stream.write("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n")
        if first:
            stream.write("|" + "---|" * len(cells) + "\n")
            first = False

    return markdown_row
