"""Job trees for the surface tests (API, CLI, dashboard), made through the store alone.

``ctx.submit`` is what makes trees in real use; these tests only read and stop them, so they
make them the way the store's own tree tests do: claim a parent under a made-up worker and
call ``store.submit_children`` for it. The kinds are not registered with any app, so a
worker serving the example kinds never claims them: a tree stays as it was built until a
test stops it (its running jobs are held by a worker that never answers, with a long lease).
"""

from __future__ import annotations

from dataclasses import dataclass

import andon
from andon._ids import new_job_id
from andon._storage import NewJob
from andon._storage._port import Store

ROOT_KIND = "tree-root"
CHILD_KIND = "tree-child"
GRANDCHILD_KIND = "tree-leaf"
HOLDER = "tree-holder"
"""The worker that 'runs' the tree's running jobs: nothing, it only holds them."""
LEASE_S = 3600.0


@dataclass(frozen=True, slots=True)
class Tree:
    root: andon.Job
    children: list[andon.Job]
    """The root's children, oldest first; the first one is running, the rest queued."""
    grandchildren: list[andon.Job]
    """The first child's children, all queued."""

    @property
    def running_child(self) -> andon.Job:
        return self.children[0]

    @property
    def size(self) -> int:
        """Every job of the tree, the root included."""
        return 1 + len(self.children) + len(self.grandchildren)


def new_job(kind: str, owner: str | None = None, **params: object) -> NewJob:
    return NewJob(id=new_job_id(), kind=kind, params=dict(params), owner=owner)


def hold(store: Store, kind: str) -> andon.Job:
    """Claim the oldest queued job of ``kind`` for :data:`HOLDER`."""
    [job] = store.claim_many(HOLDER, (kind,), LEASE_S, 1)
    return job


def submit_children(store: Store, parent: andon.Job, kind: str, n: int, owner: str | None = None) -> list[andon.Job]:
    assert parent.worker_id is not None, "a parent must be running to submit children"
    jobs = [new_job(kind, owner, i=i) for i in range(n)]
    return store.submit_children(parent.id, parent.worker_id, parent.attempt, jobs, actor=f"job:{parent.id}")


def build_tree(store: Store, *, children: int = 3, grandchildren: int = 2, owner: str | None = None) -> Tree:
    """A running root with ``children`` children: the first running with ``grandchildren``
    queued children of its own, the others queued. Every job is owned by ``owner``."""
    store.submit([new_job(ROOT_KIND, owner)], actor="test")
    root = hold(store, ROOT_KIND)
    kids = submit_children(store, root, CHILD_KIND, children, owner)
    running = hold(store, CHILD_KIND)
    assert running.id == kids[0].id
    leaves = submit_children(store, running, GRANDCHILD_KIND, grandchildren, owner) if grandchildren else []
    return Tree(store.get(root.id), [store.get(kid.id) for kid in kids], leaves)
