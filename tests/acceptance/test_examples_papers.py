"""``papers`` end to end: real PDFs (fpdf2) read by pypdf, classified, catalogued.

A cancel is tested in each phase, in the middle of one very large PDF and while a larger one
opens; each time the history must say ``cancelled``, why, when, and how many papers were
done, and the papers and pages extracted before must be kept (items and text files), with no
catalog left behind. Resumed after the cancel in the large PDF, the job goes on at the next
page and finishes with every page extracted exactly once.
"""

from __future__ import annotations

import collections
import csv
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import andon
from andon.examples import app as example_app
from andon.examples import create_sample_data
from andon.examples._papers import classify, open_pdf
from tests.acceptance.examples_support import (
    STOP_BOUND_S,
    assert_cancelled_with_history,
    cancel_and_measure,
    use_tmp_as_examples_root,
)
from tests.postgres import fresh_database
from tests.subprocesses import WorkerProcess
from tests.support import wait_items, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

MakeWorker = Callable[..., andon.Worker]

TOPICS = ["astronomy", "biology", "computing", "economics"]
PAPERS = sorted(f"{topic}-{n}.pdf" for topic in TOPICS for n in (1, 2))
LARGE_PAGES = 2000
"""Enough pages for pypdf to take seconds over the file (a few ms a page)."""
BOOK_PAGES = 1000
"""The PDF a worker process extracts on each store, cancelled and resumed."""
HUGE_PAGES = 10_000
"""Enough (near-empty) pages for pypdf to take about a second to open the file, longer than
the kind's grace period: a cancel must be seen while it opens."""


@pytest.fixture(autouse=True)
def _examples_root(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    use_tmp_as_examples_root(monkeypatch, tmp_path_factory)


@pytest.fixture(scope="module")
def sample_papers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    create_sample_data(root, ["papers"])
    return root / "papers"


def write_book(path: Path, pages: int) -> Path:
    """A PDF of ``pages`` full pages; each line starts ``<page>.<row>`` (from 0), so a test can
    tell every page's text apart."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.set_auto_page_break(False)
    line = "The telescope recorded the spectrum of a distant galaxy; the redshift of each star was measured."
    for page in range(pages):
        pdf.add_page()
        for row in range(40):
            pdf.text(12, 20 + row * 6, f"{page}.{row} {line}")
    pdf.output(str(path))
    started = time.perf_counter()
    open_pdf(path, lambda: None)
    print(f"\n[pdf open] {pages} pages: {time.perf_counter() - started:.2f} s")
    return path


@pytest.fixture(scope="module")
def large_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_book(tmp_path_factory.mktemp("large") / "zz-large.pdf", LARGE_PAGES)


@pytest.fixture(scope="module")
def book_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_book(tmp_path_factory.mktemp("book") / "book.pdf", BOOK_PAGES)


@pytest.fixture(scope="module")
def huge_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.set_auto_page_break(False)
    for page in range(HUGE_PAGES):
        pdf.add_page()
        pdf.text(12, 20, f"page {page}")
    path = tmp_path_factory.mktemp("huge") / "huge.pdf"
    pdf.output(str(path))
    started = time.perf_counter()
    open_pdf(path, lambda: None)
    print(f"\n[pdf open] {HUGE_PAGES} pages: {time.perf_counter() - started:.2f} s")
    return path


def folder_with(tmp_path: Path, sources: list[Path]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for source in sources:
        shutil.copy(source, folder / source.name)
    return folder


def open_files_under(*folders: Path) -> list[str]:
    """Files under ``folders`` that this process (the worker runs in it) holds open."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if any(target.startswith(str(folder)) for folder in folders):
            found.append(target)
    return found


def leftovers(out: Path) -> list[str]:
    """A catalog, or a temporary part of one, in ``out``."""
    return sorted(path.name for path in out.glob("*catalog*")) if out.exists() else []


# -- the whole pipeline ---------------------------------------------------------------


@pytest.mark.parametrize("catalog_format", ["markdown", "csv"])
def test_papers_are_extracted_classified_and_catalogued(
    client: andon.Client, make_worker: MakeWorker, sample_papers: Path, tmp_path: Path, catalog_format: str
) -> None:
    make_worker()
    out = tmp_path / "out"
    params = {"folder": str(sample_papers), "output_dir": str(out), "catalog_format": catalog_format}
    job = client.wait_finished(client.submit("papers", params).id, timeout=30)

    assert job.status is andon.JobStatus.SUCCEEDED, job.error
    catalog = out / ("catalog.csv" if catalog_format == "csv" else "catalog.md")
    assert job.result == {
        "catalog": str(catalog),
        "papers": 8,
        "unreadable": 0,
        "categories": dict.fromkeys(TOPICS, 2),
    }
    items = [item.data for item in client.results(job.id)]
    assert [item["paper"] for item in items if item["phase"] == "extract"] == PAPERS
    pages = collections.Counter(item["paper"] for item in items if item["phase"] == "page")
    assert pages == {item["paper"]: item["pages"] for item in items if item["phase"] == "extract"}, "a page item each"
    for item in items:
        if item["phase"] == "classify":
            assert item["category"] == item["paper"].split("-")[0], item
        elif item["phase"] == "page":
            assert item["text"].strip(), item
        else:
            assert item["pages"] >= 2, item
            assert item["words"] > 300, item
            assert Path(item["text_file"]).read_text().strip(), "the extracted text is saved"
    text = catalog.read_text()
    if catalog_format == "csv":
        rows = list(csv.reader(text.splitlines()))
        assert rows[0] == ["paper", "title", "pages", "words", "category", "score"]
        assert [row[4] for row in rows[1:]] == [name.split("-")[0] for name in PAPERS]
    else:
        assert text.startswith("| paper | title | pages | words | category | score |\n|---|")
        assert len(text.splitlines()) == 2 + len(PAPERS)
    assert leftovers(out) == [catalog.name], "no temporary catalog part is left"


def test_tf_idf_weighs_rare_keywords_more() -> None:
    documents = [["star", "cell", "cell"], ["star", "market"], ["star", "gene"]]
    categories = {"space": ["star"], "life": ["cell", "genes"], "money": ["market"]}
    # "star" is in every document, so it weighs less than a keyword found in one only:
    # idf(star) = ln(4/4) + 1 = 1, idf(market) = ln(4/2) + 1.
    rare = math.log(2) + 1
    ranked = classify(documents, categories)
    assert [category for category, _ in ranked] == ["life", "money", "life"]
    assert [score for _, score in ranked] == pytest.approx([2 / 3 * rare, rare / 2, rare / 2], abs=1e-6)
    assert classify([["nothing", "here"]], categories) == [("unclassified", 0.0)]


# -- cancels ------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_cancel_in_the_middle_of_a_large_pdf_keeps_its_pages_and_resume_goes_on_at_the_next(
    client: andon.Client, make_worker: MakeWorker, sample_papers: Path, large_pdf: Path, tmp_path: Path
) -> None:
    folder = folder_with(tmp_path, [sample_papers / PAPERS[0], sample_papers / PAPERS[1], large_pdf])
    out = tmp_path / "out"
    make_worker()
    job = client.submit("papers", {"folder": str(folder), "output_dir": str(out)})
    wait_items(client, job.id, 2)

    def deep_in_the_large_pdf() -> bool:
        message = client.get(job.id).progress_message or ""
        return message.startswith(f"extract: {large_pdf.name} page ") and int(message.split()[-1].split("/")[0]) >= 50

    wait_until(deep_in_the_large_pdf, 20, "the extraction to be 50 pages into the large PDF")

    stopped, _timing = cancel_and_measure(client, job.id, "papers (mid-PDF)", lambda: not open_files_under(folder))

    cancel = assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    assert cancel.stop_method is andon.StopMethod.COOPERATIVE
    assert cancel.message == "test: papers (mid-PDF)"
    message = stopped.progress_message or ""
    assert message.startswith(f"extract: {large_pdf.name} page ")
    page, pages = (int(n) for n in message.split()[-1].split("/"))
    assert 50 <= page < pages == LARGE_PAGES, "stopped within the PDF, not at its end"
    assert (stopped.progress_done, stopped.progress_total) == (2, 3), "two papers were done out of three"
    items = [item.data for item in client.results(stopped.id)]
    assert [item["paper"] for item in items if item["phase"] == "extract"] == PAPERS[:2], "papers before are kept"
    assert all(Path(item["text_file"]).exists() for item in items if item["phase"] == "extract")
    kept = [item for item in items if item["phase"] == "page" and item["paper"] == large_pdf.name]
    assert [item["page"] for item in kept] == list(range(1, page + 1)), "every page done is kept, in order"
    assert all(f"{item['page'] - 1}.0 The telescope" in item["text"] for item in kept), "each page's own text"
    print(f"\n[pages kept] {len(kept)} of {LARGE_PAGES} pages of {large_pdf.name}")
    assert stopped.checkpoint is not None
    assert stopped.checkpoint.items == stopped.items_count, "the last page done is checkpointed"
    assert stopped.checkpoint.state["page"] == page
    assert not (out / "zz-large.txt").exists()
    assert leftovers(out) == []

    resumed = client.resume(job.id)
    assert resumed.status is andon.JobStatus.QUEUED
    finished = client.wait_finished(job.id, timeout=200)

    assert finished.status is andon.JobStatus.SUCCEEDED, finished.error
    assert finished.attempt == 2
    assert finished.result is not None
    assert (finished.result["papers"], finished.result["unreadable"]) == (3, 0)
    items = [item.data for item in client.results(job.id)]
    large_pages = [item["page"] for item in items if item["phase"] == "page" and item["paper"] == large_pdf.name]
    assert large_pages == list(range(1, LARGE_PAGES + 1)), "each page extracted exactly once, none missing"
    names = sorted([*PAPERS[:2], large_pdf.name])
    assert [item["paper"] for item in items if item["phase"] == "extract"] == names
    assert sorted(item["paper"] for item in items if item["phase"] == "classify") == names
    text = (out / "zz-large.txt").read_text()
    firsts = re.findall(r"^(\d+)\.0 The telescope", text, flags=re.MULTILINE)
    assert firsts == [str(n) for n in range(LARGE_PAGES)], "the text file holds each page once, in order"
    assert [path.name for path in out.glob("*.part")] == []
    assert leftovers(out) == ["catalog.md"]
    assert [event.type for event in client.events(job.id)].count("resumed") == 1


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.mark.timeout(180)
def test_a_worker_process_resumes_a_book_at_the_next_page_on_each_store(
    db: str, book_pdf: Path, tmp_path: Path
) -> None:
    folder = folder_with(tmp_path, [book_pdf])
    out = tmp_path / "out"
    worker = WorkerProcess(tmp_path, db, concurrency=1)
    try:
        worker.wait_started(60)
        with andon.connect(db, example_app, actor="tester") as client:
            job = client.submit("papers", {"folder": str(folder), "output_dir": str(out)})
            wait_items(client, job.id, 30, timeout=60)
            stopped = client.cancel(job.id, wait=True, timeout=30).job
            assert stopped.status is andon.JobStatus.CANCELLED
            assert stopped.cancel is not None
            assert stopped.cancel.stop_method is andon.StopMethod.COOPERATIVE
            kept = [item.data["page"] for item in client.results(job.id)]
            assert kept == list(range(1, len(kept) + 1)), "the pages done are kept, in order"
            assert 30 <= len(kept) < BOOK_PAGES
            print(f"\n[pages kept] {len(kept)} of {BOOK_PAGES} ({db.split(':')[0]})")

            client.resume(job.id)
            finished = client.wait_finished(job.id, timeout=150)

            assert finished.status is andon.JobStatus.SUCCEEDED, finished.error
            items = [item.data for item in client.results(job.id)]
            pages = [item["page"] for item in items if item["phase"] == "page"]
            assert pages == list(range(1, BOOK_PAGES + 1)), "each page extracted exactly once, none missing"
            assert [item["phase"] for item in items[BOOK_PAGES:]] == ["extract", "classify"]
        assert worker.stop() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
    finally:
        worker.kill()


def test_cancel_while_a_huge_pdf_opens_stops_cooperatively(
    client: andon.Client, make_worker: MakeWorker, huge_pdf: Path, tmp_path: Path
) -> None:
    folder = folder_with(tmp_path, [huge_pdf])
    make_worker()
    job = client.submit("papers", {"folder": str(folder), "output_dir": str(tmp_path / "out")})
    opening = f"extract: {huge_pdf.name} opening"
    wait_until(lambda: client.get(job.id).progress_message == opening, 20, "the huge PDF to be opening", 0.005)

    stopped, _timing = cancel_and_measure(client, job.id, "papers (opening a PDF)", lambda: True)

    cancel = assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    assert cancel.stop_method is andon.StopMethod.COOPERATIVE, "stopped by the handler, not by an injection"
    assert stopped.progress_message == opening, "stopped while the PDF was opening"
    assert stopped.items_count == 0


@pytest.mark.parametrize("phase", ["extract", "classify", "catalog"])
def test_cancel_in_each_phase(
    client: andon.Client, make_worker: MakeWorker, sample_papers: Path, tmp_path: Path, phase: str
) -> None:
    out = tmp_path / "out"
    make_worker()
    # step_delay_s makes each phase last long enough to be cancelled in for sure.
    job = client.submit("papers", {"folder": str(sample_papers), "output_dir": str(out), "step_delay_s": 0.1})
    under_way = re.compile(rf"{phase}: [2-6]/{len(PAPERS)} ")
    wait_until(
        lambda: under_way.match(client.get(job.id).progress_message or "") is not None,
        20,
        f"the {phase} phase to be under way",
    )

    stopped, _timing = cancel_and_measure(client, job.id, f"papers ({phase})", lambda: not leftovers(out))

    assert_cancelled_with_history(client, stopped, bound_s=STOP_BOUND_S)
    message = stopped.progress_message or ""
    assert message.startswith(f"{phase}: "), f"the progress names the phase: {message!r}"
    done = stopped.progress_done
    assert done is not None
    assert 2 <= done < len(PAPERS)
    items = [item.data for item in client.results(stopped.id)]
    extracted = [item["paper"] for item in items if item["phase"] == "extract"]
    classified = [item["paper"] for item in items if item["phase"] == "classify"]
    if phase == "extract":
        assert extracted == PAPERS[: int(done)]
    else:
        assert extracted == PAPERS, "every paper extracted in phase 1 is kept"
    if phase == "classify":
        assert classified == PAPERS[: int(done)]
    assert leftovers(out) == [], "neither a catalog nor a part of one"


def test_corrupt_pdf_with_fail_fast_fails_the_job(
    client: andon.Client, make_worker: MakeWorker, sample_papers: Path, tmp_path: Path
) -> None:
    folder = folder_with(tmp_path, [sample_papers / "astronomy-1.pdf", sample_papers / "biology-1.pdf"])
    (folder / "b-corrupt.pdf").write_bytes(b"%PDF-1.7\nthis is not really a PDF\n")
    make_worker()
    job = client.submit("papers", {"folder": str(folder), "output_dir": str(tmp_path / "out"), "fail_fast": True})
    failed = client.wait_finished(job.id, timeout=30)

    assert failed.status is andon.JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "RuntimeError"
    assert failed.error.message.startswith("cannot read b-corrupt.pdf: ")
    assert failed.cancel is None
    papers = [item.data["paper"] for item in client.results(job.id) if item.data["phase"] == "extract"]
    assert papers == ["astronomy-1.pdf"], "work before is kept"
    events = client.events(job.id)
    assert events[-1].to_status is andon.JobStatus.FAILED
    assert events[-1].message is not None
    assert "b-corrupt.pdf" in events[-1].message


def test_corrupt_pdf_without_fail_fast_is_reported_and_skipped(
    client: andon.Client, make_worker: MakeWorker, sample_papers: Path, tmp_path: Path
) -> None:
    folder = folder_with(tmp_path, [sample_papers / "astronomy-1.pdf", sample_papers / "biology-1.pdf"])
    (folder / "b-corrupt.pdf").write_bytes(b"%PDF-1.7\nthis is not really a PDF\n")
    make_worker()
    job = client.wait_finished(
        client.submit("papers", {"folder": str(folder), "output_dir": str(tmp_path / "out")}).id, timeout=30
    )

    assert job.status is andon.JobStatus.SUCCEEDED, job.error
    assert job.result is not None
    assert job.result["unreadable"] == 1
    assert job.result["papers"] == 2
    errors = [item.data for item in client.results(job.id) if "error" in item.data]
    assert [item["paper"] for item in errors] == ["b-corrupt.pdf"]
