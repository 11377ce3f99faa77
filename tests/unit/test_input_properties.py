"""Generated input for every public function that takes user data, on a real SQLite store.

* ``cli._input.parse_params``: any command-line words give params or the CLI's usage
  error (``typer.BadParameter``), nothing else; JSON values round-trip; other text is
  kept as text.
* ``Client.submit``: params are validated against the kind's schema before a job exists:
  any mapping gives a job whose params fit the schema, or ``InvalidParams`` and no row.
* ids, filters, limits and cursors: any text gives an answer or andon's own error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import andon
from andon._ids import is_job_id, new_job_id
from andon.cli._input import parse_params, split_list

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.text(min_size=1, max_size=12).filter(lambda key: "=" not in key)

typed = andon.App()


@typed.job()
def typed_kind(
    ctx: andon.Context, name: str, count: int = 1, ratio: float = 0.5, tags: list[str] | None = None
) -> None:
    """A kind with required, defaulted, numeric and list params."""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[andon.Client]:
    path: Path = tmp_path_factory.mktemp("properties") / "andon.db"
    with andon.SqliteStore(str(path)) as store:
        yield andon.Client(store, typed, actor="properties")


def _listed(client: andon.Client) -> int:
    total, cursor = 0, None
    while True:
        page = client.list_jobs(limit=1000, cursor=cursor)
        total += len(page.items)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


# -- the CLI's param parsing ----------------------------------------------------------------------


@SETTINGS
@given(st.lists(st.text()))
def test_parse_params_gives_params_or_the_clis_usage_error(words: list[str]) -> None:
    refused: typer.BadParameter | None = None
    try:
        params = parse_params(words)
    except typer.BadParameter as exc:
        refused = exc
    if refused is not None:
        assert "PARAMS" in str(refused.param_hint)
        assert refused.message
        return
    assert len(params) == len(words)
    json.dumps(params, allow_nan=False)  # what it returns is always JSON (no NaN, no Infinity)


@SETTINGS
@given(st.dictionaries(KEYS, JSON_VALUES, max_size=6))
def test_json_values_round_trip_through_the_command_line(params: dict[str, Any]) -> None:  # Any: JSON values
    words = [f"{key}={json.dumps(value)}" for key, value in params.items()]
    assert parse_params(words) == params


@SETTINGS
@given(KEYS, st.text())
def test_text_that_is_not_json_is_kept_as_text(key: str, raw: str) -> None:
    try:
        expected = json.loads(raw, parse_constant=lambda constant: raw)
    except ValueError:
        expected = raw
    if isinstance(expected, float) and expected != expected:  # pragma: no cover - NaN cannot be parsed
        expected = raw
    assert parse_params([f"{key}={raw}"]) == {key: expected}


@SETTINGS
@given(KEYS, st.text(), st.text())
def test_a_repeated_key_is_a_usage_error(key: str, first: str, second: str) -> None:
    with pytest.raises(typer.BadParameter, match="given twice"):
        parse_params([f"{key}={first}", f"{key}={second}"])


@SETTINGS
@given(st.one_of(st.none(), st.text()))
def test_split_list_gives_stripped_non_empty_parts(text: str | None) -> None:
    parts = split_list(text)
    if text is None:
        assert parts is None
        return
    assert parts is not None
    assert all(part and part == part.strip() and "," not in part for part in parts)


# -- submit: validated before a job exists ------------------------------------------------------------


PARAMS = st.dictionaries(
    st.sampled_from(["name", "count", "ratio", "tags", "extra"]) | st.text(max_size=6),
    JSON_VALUES,
    max_size=5,
)


@SETTINGS
@given(PARAMS)
def test_submit_creates_a_job_with_valid_params_or_nothing(client: andon.Client, params: dict[str, Any]) -> None:
    before = _listed(client)
    refused: andon.InvalidParams | None = None
    try:
        job = client.submit("typed_kind", params)
    except andon.InvalidParams as exc:
        refused = exc
    if refused is not None:
        assert refused.problems
        assert _listed(client) == before
        return
    assert _listed(client) == before + 1
    assert isinstance(job.params["name"], str)
    assert isinstance(job.params["count"], int)
    assert isinstance(job.params["ratio"], float)
    assert job.params["tags"] is None or all(isinstance(tag, str) for tag in job.params["tags"])
    assert set(job.params) == {"name", "count", "ratio", "tags"}
    assert client.get(job.id).params == job.params  # stored as validated


@SETTINGS
@given(st.text(max_size=30), PARAMS)
def test_an_unknown_kind_creates_nothing(client: andon.Client, kind: str, params: dict[str, Any]) -> None:
    if kind in typed:
        return
    before = _listed(client)
    with pytest.raises(andon.UnknownKind):
        client.submit(kind, params)
    assert _listed(client) == before


# -- ids, filters, limits, cursors ----------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=60))
def test_any_text_as_a_job_id_is_found_or_not_found(client: andon.Client, job_id: str) -> None:
    for call in (client.get, client.events, client.results, client.cancel, client.retry, client.delete):
        with pytest.raises(andon.JobNotFound):
            call(job_id)


@SETTINGS
@given(
    st.lists(st.sampled_from(list(andon.JobStatus)), max_size=3),
    st.lists(st.text(max_size=20), max_size=3),
    st.integers(),
    st.one_of(st.none(), st.text(max_size=40), st.builds(new_job_id)),
)
def test_listing_takes_any_filter_limit_and_cursor(
    client: andon.Client, statuses: list[andon.JobStatus], kinds: list[str], limit: int, cursor: str | None
) -> None:
    if cursor is not None and not is_job_id(cursor):
        # Issue 12, item 9: a cursor no page gave used to be compared as text.
        with pytest.raises(andon.InvalidCursor, match="cursor"):
            client.list_jobs(statuses=statuses, kinds=kinds, limit=limit, cursor=cursor)
        return
    page = client.list_jobs(statuses=statuses, kinds=kinds, limit=limit, cursor=cursor)
    assert len(page.items) <= max(1, min(limit, 1000))
    assert all(job.kind in kinds for job in page.items) or not kinds
    assert all(job.status in statuses for job in page.items) or not statuses


@SETTINGS
@given(st.text(max_size=20).filter(lambda text: text not in {status.value for status in andon.JobStatus}))
def test_an_unknown_status_filter_is_refused(client: andon.Client, status: str) -> None:
    with pytest.raises(ValueError, match="is not a valid JobStatus"):
        client.list_jobs(statuses=[status])


@SETTINGS
@given(st.integers(), st.one_of(st.none(), st.integers()))
def test_results_take_any_offset_and_limit(client: andon.Client, offset: int, limit: int | None) -> None:
    job = client.submit("typed_kind", {"name": "x"})
    assert client.results(job.id, offset, limit) == []
