"""``papers``: a PDF pipeline in three phases - extract, classify, catalog.

1. **extract**: the text of each PDF, page by page (pypdf): one item per page (its text),
   then one item per paper; the text is saved as a ``.txt`` file next to the catalog.
2. **classify**: each paper gets the category whose keywords weigh most in it, by TF-IDF
   over the whole set of papers (so a word that every paper uses counts for little); one
   item per paper.
3. **catalog**: a Markdown (or CSV) table of every paper, written to a temporary file and
   renamed into place, so a cancel never leaves a half-written catalog behind.

What a cancel does: the handler stops at its next checkpoint - while a PDF opens (its reads
are checkpoints: pypdf parsing a 10,000-page file takes a second or more), between two pages
of a PDF, between two papers in each phase, between two catalog rows - with
``andon.Cancelled``. Every page extracted before is kept as an item, and so is every
paper's, with its text file; the progress message says which phase it was in.

Resume: each page is followed by a checkpoint (``ctx.checkpoint``) of where the job stands -
the paper and the next page, how much of that paper's text is saved in its ``.txt.part``
file, the papers that could not be read, the papers classified. A resumed attempt goes on
at the next page and extracts no page twice; it reads the papers done before back from
their text files in ``output_dir``, so it needs the folders of the attempt before (a resume
on another machine, or after the output was removed, fails and says so).
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Final, Literal

from andon import Context
from andon.examples import app
from andon.examples._confinement import ExamplesFolder, checked_folder
from andon.examples._sample_data import TOPICS

if TYPE_CHECKING:
    from pypdf import PdfReader

__all__ = ["classify", "papers"]

_WORD: Final = re.compile(r"[a-z]{3,}")

READS_PER_CHECK: Final = 256
"""pypdf reads its stream some 100 times per page while it opens a PDF; a check in every 256
reads keeps a cancel's wait in milliseconds at no cost we could measure."""
_READ_CHUNK: Final = 1 << 20
MAX_PAGE_CHARS: Final = 100_000
"""A page item's text is cut there (and says so), well within an item's 1 MiB."""

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


@dataclass(slots=True)
class _Standing:
    """Where a papers job stands: what its checkpoints store (numbers and one name, so the
    state stays small however many papers and pages there are)."""

    paper: int = 0
    """The paper being extracted (an index into the sorted files); past the last, phase 1 is over."""
    page: int = 0
    """Pages of it done."""
    part: int = 0
    """Bytes of its text saved in its ``.txt.part`` file."""
    classified: int = 0
    unreadable: list[int] = field(default_factory=list)

    def state(self, files: list[Path]) -> dict[str, Any]:  # Any: a JSON state
        name = files[self.paper].name if self.paper < len(files) else None
        return {
            "paper": self.paper,
            "name": name,
            "page": self.page,
            "part": self.part,
            "classified": self.classified,
            "unreadable": self.unreadable,
        }

    @classmethod
    def resumed(cls, state: dict[str, Any] | None, files: list[Path]) -> _Standing:  # Any: a JSON state
        if state is None:
            return cls()
        paper = int(state["paper"])
        name = files[paper].name if paper < len(files) else None
        if paper > len(files) or name != state["name"]:
            raise RuntimeError(
                f"cannot resume: the folder changed since the checkpoint (paper {paper + 1} was "
                f"{state['name']!r}, it is now {name!r}); submit the job again"
            )
        return cls(paper, int(state["page"]), int(state["part"]), int(state["classified"]), list(state["unreadable"]))

    def next_paper(self) -> None:
        self.paper, self.page, self.part = self.paper + 1, 0, 0


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
    (a checkpoint), to follow the phases. Checkpoints after every page; a resumed job goes
    on at the next page (see the module's docstring).
    """
    # Checked again here, because the worker's examples root (not the submitter's) is what
    # counts; and the folders used are the resolved ones that were checked.
    root = checked_folder("folder", folder)
    out = checked_folder("output_dir", output_dir) if output_dir else _default_output(ctx.job_id)
    files = sorted(root.glob("*.pdf"))
    if not files:
        raise FileNotFoundError(f"no PDF files in {root}")
    out.mkdir(parents=True, exist_ok=True)

    standing = _Standing.resumed(ctx.resumed, files)
    done = _extract_all(ctx, files, out, fail_fast, step_delay_s, standing)
    chosen = categories if categories is not None else TOPICS
    _classify_all(ctx, done, chosen, step_delay_s, standing, files)
    catalog = _write_catalog(ctx, done, out, catalog_format, step_delay_s)
    counts = dict(collections.Counter(paper.category for paper in done))
    return {"catalog": str(catalog), "papers": len(done), "unreadable": len(files) - len(done), "categories": counts}


def _default_output(job_id: str) -> Path:
    """A folder of the job's own in the temp directory: outside the examples root, but named
    by andon, so the submitter has no say in where it is."""
    return Path(tempfile.gettempdir()) / f"andon-papers-{job_id}"


# -- phase 1 ------------------------------------------------------------------------------


def _extract_all(
    ctx: Context, files: list[Path], out: Path, fail_fast: bool, delay_s: float, standing: _Standing
) -> list[_Paper]:
    unreadable = set(standing.unreadable)
    done = [
        _extracted_before(out, path) for index, path in enumerate(files[: standing.paper]) if index not in unreadable
    ]
    for index in range(standing.paper, len(files)):
        path = files[index]
        try:
            paper = _extract(ctx, path, out, files, standing)
        except Exception as exc:
            # A damaged PDF can raise almost anything from inside pypdf, hence the broad
            # except. It cannot swallow a cancel: andon.Cancelled is not an Exception.
            if fail_fast:
                raise RuntimeError(f"cannot read {path.name}: {exc}") from exc
            ctx.emit({"phase": "extract", "paper": path.name, "error": str(exc)})
            standing.unreadable.append(index)
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
        standing.next_paper()
        ctx.checkpoint(standing.state(files))
        ctx.progress(index + 1, len(files), f"extract: {index + 1}/{len(files)} papers read")
        ctx.sleep(delay_s)
    return done


def _extract(ctx: Context, path: Path, out: Path, files: list[Path], standing: _Standing) -> _Paper:
    total = len(files)
    ctx.progress(standing.paper, total, f"extract: {path.name} opening")
    reader = open_pdf(path, ctx.check)
    pages = len(reader.pages)
    part_path, text_file = out / f".{path.stem}.txt.part", out / f"{path.stem}.txt"
    if standing.page < pages:
        with _part_file(part_path, standing) as part:
            for number in range(standing.page, pages):
                # One checkpoint per page: extracting a page takes milliseconds, a whole book
                # takes minutes, and a cancel should not wait for the book.
                ctx.check()
                text = reader.pages[number].extract_text()
                # The text is saved and emitted before the checkpoint that says the page is
                # done, so the state is never ahead of them; what came after the last
                # checkpoint is cut off again by a resume (here and in the items).
                part.write(("\n" if number else "").encode() + text.encode())
                part.flush()
                ctx.emit(_page_item(path.name, number + 1, text))
                standing.page, standing.part = number + 1, part.tell()
                ctx.checkpoint(standing.state(files))
                ctx.progress(standing.paper, total, f"extract: {path.name} page {number + 1}/{pages}")
    # Idempotent, so that an attempt stopped between the rename and the next checkpoint
    # can finish the paper again when it resumes.
    if part_path.exists():
        part_path.replace(text_file)
    text = text_file.read_text()
    title = str(reader.metadata.title) if reader.metadata and reader.metadata.title else _first_line(text, path)
    _sidecar(text_file).write_text(json.dumps({"title": title, "pages": pages}))
    return _Paper(path.name, title, pages, _words(text), str(text_file))


def _page_item(paper: str, page: int, text: str) -> dict[str, Any]:  # Any: a JSON item
    item: dict[str, Any] = {"phase": "page", "paper": paper, "page": page, "text": text[:MAX_PAGE_CHARS]}
    if len(text) > MAX_PAGE_CHARS:
        item["truncated"] = True
    return item


def _part_file(part_path: Path, standing: _Standing) -> BinaryIO:
    """The paper's partial text, cut back to what the checkpoint counts (a fresh paper: empty)."""
    if standing.part and (not part_path.exists() or part_path.stat().st_size < standing.part):
        raise RuntimeError(
            f"cannot resume at page {standing.page + 1}: the text saved so far ({part_path}) is gone or "
            "shorter than the checkpoint says; submit the job again"
        )
    part = part_path.open("r+b" if standing.part else "w+b")
    part.truncate(standing.part)
    part.seek(standing.part)
    return part


def _sidecar(text_file: Path) -> Path:
    return text_file.with_name(f".{text_file.stem}.json")


def _extracted_before(out: Path, path: Path) -> _Paper:
    """A paper an earlier attempt extracted, read back from its text file."""
    text_file = out / f"{path.stem}.txt"
    try:
        text = text_file.read_text()
        facts = json.loads(_sidecar(text_file).read_text())
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"cannot resume: {exc.filename}, saved by an earlier attempt, is gone; submit the job again"
        ) from None
    return _Paper(path.name, str(facts["title"]), int(facts["pages"]), _words(text), str(text_file))


def open_pdf(path: Path, check: Callable[[], None]) -> PdfReader:
    """A pypdf reader of ``path`` with its page tree walked, calling ``check`` all along.

    ``check`` (a checkpoint: ``ctx.check``) runs between chunks of the file as it is read
    into memory, and then in every ``READS_PER_CHECK`` reads pypdf makes of it, so that it
    also runs while pypdf parses the cross-reference table and walks the page tree - the
    part of opening that takes long (about 0.5 s for 2,000 pages here, past the grace
    period for 10,000). ``len(reader.pages)`` is that walk: done here, among the checks.
    """
    from pypdf import PdfReader

    data = bytearray()
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK):
            check()
            data += chunk
    reader = PdfReader(_CheckedStream(bytes(data), check))
    len(reader.pages)
    return reader


class _CheckedStream(io.BytesIO):
    """A PDF in memory whose reads are checkpoints: one in every ``READS_PER_CHECK``."""

    def __init__(self, data: bytes, check: Callable[[], None]) -> None:
        super().__init__(data)
        self._check = check
        self._reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self._reads += 1
        if self._reads % READS_PER_CHECK == 0:
            self._check()
        return super().read(size)


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


def _classify_all(
    ctx: Context,
    done: list[_Paper],
    categories: dict[str, list[str]],
    delay_s: float,
    standing: _Standing,
    files: list[Path],
) -> None:
    ranked = classify([paper.words for paper in done], categories)
    for index, (paper, (category, score)) in enumerate(zip(done, ranked, strict=True)):
        paper.category, paper.score = category, score
        if index < standing.classified:
            continue  # classified (and emitted) by an attempt before this one
        # Scoring is cheap; the checkpoint per paper is where a slower method (a model call
        # per paper) would spend its time, and where this loop would stop.
        ctx.check()
        ctx.emit({"phase": "classify", "paper": paper.name, "category": category, "score": score})
        standing.classified = index + 1
        ctx.checkpoint(standing.state(files))
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
