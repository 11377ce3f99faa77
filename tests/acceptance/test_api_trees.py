"""Job trees over the REST API (issue 16): a job's place in its tree, its children and
descendants by state, ``GET /jobs/{id}/children``, the ``parent`` and ``root`` filters, a
cancel that reaches the subtree, and the owner rules for all of these.

Trees are made through the store (``tests/trees.py``); nothing runs them, so each test reads
exactly the tree it built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

import andon
from andon.api import create_app
from andon.api._events import changes
from andon.api._schemas import JobSummary
from andon.examples import app as example_app
from tests.trees import CHILD_KIND, Tree, build_tree

pytestmark = pytest.mark.timeout(60)

Json = dict[str, Any]  # Any: decoded JSON bodies
UNKNOWN = "01890000-0000-7000-8000-000000000000"


@pytest.fixture
def http(store: andon.SqliteStore) -> Iterator[TestClient]:
    with TestClient(create_app(store, example_app), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def tree(store: andon.SqliteStore) -> Tree:
    return build_tree(store, children=3, grandchildren=2)


def get(http: TestClient, path: str, status: int = 200, **options: Any) -> Json:  # Any: httpx options
    response = http.get(path, **options)
    assert response.status_code == status, response.text
    body: Json = response.json()
    return body


def counts(**by_state: int) -> Json:
    every = {s.value: by_state.get(s.value, 0) for s in andon.JobStatus}
    active = sum(by_state.get(s.value, 0) for s in andon.JobStatus if s.is_active)
    return {**every, "total": sum(by_state.values()), "active": active}


def test_a_job_shows_its_place_in_the_tree_and_its_counts(http: TestClient, tree: Tree) -> None:
    root = get(http, f"/api/v1/jobs/{tree.root.id}")
    assert (root["parent_id"], root["root_id"], root["awaiting"], root["key"]) == (None, None, None, None)
    assert (root["detached"], root["fail_parent"]) == (False, False)
    assert root["children"] == counts(running=1, queued=2)
    assert root["descendants"] == counts(running=1, queued=4)

    child = get(http, f"/api/v1/jobs/{tree.running_child.id}")
    assert (child["parent_id"], child["root_id"]) == (tree.root.id, tree.root.id)
    assert child["children"] == child["descendants"] == counts(queued=2)
    leaf = get(http, f"/api/v1/jobs/{tree.grandchildren[0].id}")
    assert (leaf["parent_id"], leaf["root_id"]) == (tree.running_child.id, tree.root.id)
    assert leaf["children"] == leaf["descendants"] == counts()


def test_children_come_in_pages_newest_first_with_their_own_counts(http: TestClient, tree: Tree) -> None:
    first = get(http, f"/api/v1/jobs/{tree.root.id}/children", params={"limit": 2})
    newest_first = [job.id for job in reversed(tree.children)]
    assert [job["id"] for job in first["items"]] == newest_first[:2]
    assert first["next_cursor"] == newest_first[1]
    rest = get(http, f"/api/v1/jobs/{tree.root.id}/children", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [job["id"] for job in rest["items"]] == newest_first[2:]
    assert rest["next_cursor"] is None
    # The running child's own children, for a tree view to expand it.
    assert rest["child_counts"] == {tree.running_child.id: counts(queued=2)}
    assert first["child_counts"] == {}
    queued = get(http, f"/api/v1/jobs/{tree.root.id}/children", params={"status": "queued"})
    assert {job["id"] for job in queued["items"]} == {job.id for job in tree.children[1:]}
    leaves = get(http, f"/api/v1/jobs/{tree.grandchildren[0].id}/children")
    assert leaves == {"items": [], "next_cursor": None, "child_counts": {}}


@pytest.mark.parametrize("job_id", [UNKNOWN, "nope", "x" * 100])
def test_children_of_an_unknown_job_is_a_json_404(http: TestClient, job_id: str) -> None:
    body = get(http, f"/api/v1/jobs/{job_id}/children", 404)
    assert body["error"]["code"] == "job_not_found"


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 1001}, {"cursor": "nope"}, {"status": "sleeping"}, {"limit": "many"}],
)
def test_bad_children_queries_are_json_422s(http: TestClient, tree: Tree, query: Json) -> None:
    body = get(http, f"/api/v1/jobs/{tree.root.id}/children", 422, params=query)
    assert body["error"]["code"] == "invalid_request"


def test_the_list_filters_by_parent_and_by_root(http: TestClient, tree: Tree) -> None:
    by_parent = get(http, "/api/v1/jobs", params={"parent": tree.root.id})
    assert {job["id"] for job in by_parent["items"]} == {job.id for job in tree.children}
    by_root = get(http, "/api/v1/jobs", params={"root": tree.root.id})
    assert {job["id"] for job in by_root["items"]} == {job.id for job in tree.children + tree.grandchildren}
    both = get(http, "/api/v1/jobs", params={"root": tree.root.id, "kind": CHILD_KIND, "status": "running"})
    assert [job["id"] for job in both["items"]] == [tree.running_child.id]
    assert get(http, "/api/v1/jobs", params={"root": UNKNOWN})["items"] == []
    assert get(http, "/api/v1/jobs", params={"parent": tree.grandchildren[0].id})["items"] == []


@pytest.mark.parametrize("name", ["parent", "root"])
@pytest.mark.parametrize("value", ["nope", "", "01890000-0000-4000-8000-000000000000", "'; drop table jobs; --"])
def test_a_filter_that_names_no_possible_job_is_a_json_422(http: TestClient, name: str, value: str) -> None:
    body = get(http, "/api/v1/jobs", 422, params={name: value})
    assert body["error"]["code"] == "invalid_request"
    assert name in body["error"]["message"]


def test_list_pages_carry_child_counts_of_their_jobs(http: TestClient, tree: Tree) -> None:
    page = get(http, "/api/v1/jobs")
    assert len(page["items"]) == tree.size
    assert page["child_counts"] == {
        tree.root.id: counts(running=1, queued=2),
        tree.running_child.id: counts(queued=2),
    }
    summary = next(job for job in page["items"] if job["id"] == tree.grandchildren[1].id)
    assert (summary["parent_id"], summary["root_id"]) == (tree.running_child.id, tree.root.id)
    assert "children" not in summary  # counts live on the page, not on summaries (the stream has none)


def test_cancelling_the_root_stops_the_tree_and_names_it(http: TestClient, tree: Tree) -> None:
    response = http.post(f"/api/v1/jobs/{tree.root.id}/cancel", json={"message": "enough"})
    assert response.status_code == 200, response.text
    root = response.json()
    assert root["status"] == "cancelling"
    assert root["cancel"]["origin"] is None
    # Queued descendants are withdrawn at once; the running child waits for its worker.
    assert root["descendants"] == counts(cancelled=4, cancelling=1)
    assert root["children"] == counts(cancelled=2, cancelling=1)
    for job_id in [job.id for job in tree.children + tree.grandchildren]:
        job = get(http, f"/api/v1/jobs/{job_id}")
        assert job["cancel"]["reason"] == "parent_cancelled"
        assert job["cancel"]["origin"] == tree.root.id


def test_the_openapi_document_has_the_tree_surfaces(http: TestClient) -> None:
    spec = get(http, "/openapi.json")
    children = spec["paths"]["/api/v1/jobs/{job_id}/children"]["get"]
    assert children["operationId"] == "listChildren"
    names = {p["name"] for p in spec["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert {"parent", "root"} <= names
    summary = spec["components"]["schemas"]["JobSummary"]["properties"]
    assert {"parent_id", "root_id", "detached", "fail_parent", "key", "awaiting"} <= set(summary)
    assert "origin" in spec["components"]["schemas"]["CancelOut"]["properties"]
    assert {"children", "descendants"} <= set(spec["components"]["schemas"]["JobOut"]["properties"])


def test_the_event_stream_carries_the_tree_fields_and_awaiting_changes(tree: Tree) -> None:
    child = tree.running_child
    data = JobSummary.of(child).model_dump(mode="json")
    assert (data["parent_id"], data["root_id"]) == (tree.root.id, tree.root.id)
    waiting = child.replace(status=andon.JobStatus.CANCELLING)
    stopped = waiting.replace(awaiting=andon.JobStatus.CANCELLED)
    assert [c.type for c in changes({child.id: waiting}, {child.id: stopped})] == ["job.status"]


# -- owners -----------------------------------------------------------------------------


@pytest.fixture
def tokens(store: andon.SqliteStore) -> dict[str, dict[str, str]]:
    admin = andon.Client(store)
    names = {"ops": "admin", "alice": "user", "bob": "user"}
    return {name: {"authorization": f"Bearer {admin.create_token(name, role).token}"} for name, role in names.items()}


def test_a_users_tree_reads_are_their_own(
    http: TestClient, store: andon.SqliteStore, tokens: dict[str, dict[str, str]]
) -> None:
    mine = build_tree(store, owner="alice")
    alice, bob, ops = tokens["alice"], tokens["bob"], tokens["ops"]
    for who in (alice, ops):
        job = get(http, f"/api/v1/jobs/{mine.root.id}", headers=who)
        assert job["descendants"]["total"] == 5
        assert len(get(http, f"/api/v1/jobs/{mine.root.id}/children", headers=who)["items"]) == 3
        assert len(get(http, "/api/v1/jobs", params={"root": mine.root.id}, headers=who)["items"]) == 5
        assert get(http, "/api/v1/jobs", headers=who)["child_counts"][mine.root.id]["total"] == 3
    for path in (f"/api/v1/jobs/{mine.root.id}", f"/api/v1/jobs/{mine.root.id}/children"):
        assert get(http, path, 404, headers=bob)["error"]["code"] == "job_not_found"
    assert get(http, "/api/v1/jobs", params={"root": mine.root.id}, headers=bob)["items"] == []
    assert get(http, "/api/v1/jobs", params={"parent": mine.root.id}, headers=bob)["items"] == []
    assert get(http, "/api/v1/jobs", headers=bob)["child_counts"] == {}
