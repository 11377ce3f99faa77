"""Job trees on the command line (issue 16): ``andon show`` names a job's parent and root and
lists its children and descendant counts; ``andon tree`` draws the whole subtree, capped with
a line that says how much was left out; ``andon ls --parent/--root`` filter by tree.

Trees are made through the store (``tests/trees.py``) in a real SQLite file; the commands run
in-process through Typer's ``CliRunner``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import Result

import andon
from tests.acceptance import cli_checks
from tests.trees import CHILD_KIND, GRANDCHILD_KIND, ROOT_KIND, Tree, build_tree, hold, submit_children

pytestmark = pytest.mark.timeout(60)

Run = Callable[..., Result]
UNKNOWN = "01890000-0000-7000-8000-000000000000"


@pytest.fixture
def tree(store: andon.SqliteStore) -> Tree:
    return build_tree(store, children=3, grandchildren=2)


def lines_with(output: str, *fragments: str) -> list[str]:
    return [line for line in output.splitlines() if all(f in line for f in fragments)]


def test_show_lists_children_and_descendant_counts(run: Run, tree: Tree) -> None:
    shown = run("show", tree.root.id)
    assert shown.exit_code == 0, shown.output
    assert lines_with(shown.stdout, "descendants 5 (4 queued, 1 running)", f"andon tree {tree.root.id}")
    for child in tree.children:
        [row] = lines_with(shown.stdout, child.id, CHILD_KIND)
        assert ("running" if child is tree.running_child else "queued") in row
    [running] = lines_with(shown.stdout, tree.running_child.id)
    assert running.rstrip().endswith("2")  # its own children
    assert "parent " not in shown.stdout  # a top-level job has none


def test_show_names_parent_root_and_a_cancel_that_came_from_above(
    run: Run, tree: Tree, store: andon.SqliteStore
) -> None:
    leaf = tree.grandchildren[0]
    andon.Client(store).cancel(tree.root.id)
    shown = run("show", leaf.id)
    assert shown.exit_code == 0, shown.output
    assert lines_with(shown.stdout, "parent", tree.running_child.id)
    assert lines_with(shown.stdout, "root", tree.root.id)
    assert lines_with(shown.stdout, "cancel reason", "parent_cancelled")
    assert lines_with(shown.stdout, "cancel origin", tree.root.id)
    assert lines_with(shown.stdout, "stop method", "withdrawn")
    assert "descendants" not in shown.stdout  # a leaf has none


def test_show_caps_the_children_it_lists(run: Run, tree: Tree) -> None:
    shown = run("show", tree.root.id, "--children", "1")
    assert shown.exit_code == 0, shown.output
    newest = tree.children[-1]
    assert lines_with(shown.stdout, newest.id, CHILD_KIND)
    assert not lines_with(shown.stdout, tree.children[0].id, CHILD_KIND)
    assert lines_with(shown.stdout, "more children", f"andon ls --parent {tree.root.id}")


def test_tree_draws_every_job_with_status_reason_and_stop_method(
    run: Run, tree: Tree, store: andon.SqliteStore
) -> None:
    andon.Client(store).cancel(tree.running_child.id, message="not [red]this[/red] one")
    drawn = run("tree", tree.root.id)
    assert drawn.exit_code == 0, drawn.output
    lines = drawn.stdout.splitlines()
    assert lines_with(lines[0], ROOT_KIND, "running", tree.root.id)
    [child] = lines_with(drawn.stdout, tree.running_child.id)
    assert lines_with(child, "cancelling", "user (stopping)")
    for leaf in tree.grandchildren:
        [line] = lines_with(drawn.stdout, leaf.id)
        assert lines_with(line, GRANDCHILD_KIND, "cancelled", "parent_cancelled → withdrawn")
        # Deeper than the child: indentation shows the level.
        assert line.index(GRANDCHILD_KIND) > child.index(CHILD_KIND)
    assert len(lines) == tree.size


def test_tree_of_a_child_draws_its_subtree_and_points_at_the_root(run: Run, tree: Tree) -> None:
    drawn = run("tree", tree.running_child.id)
    assert drawn.exit_code == 0, drawn.output
    assert lines_with(drawn.stdout, "child of", tree.root.id, f"andon tree {tree.root.id}")
    assert all(not lines_with(drawn.stdout, sibling.id) for sibling in tree.children[1:])
    assert all(lines_with(drawn.stdout, leaf.id) for leaf in tree.grandchildren)


def test_a_large_tree_is_capped_with_a_line_that_says_how_much_is_left_out(run: Run, store: andon.SqliteStore) -> None:
    big = build_tree(store, children=250, grandchildren=0)
    second = hold(store, CHILD_KIND)
    submit_children(store, second, GRANDCHILD_KIND, 30)
    drawn = run("tree", big.root.id, "--limit", "100")
    assert drawn.exit_code == 0, drawn.output
    assert len(lines_with(drawn.stdout, CHILD_KIND)) == 100
    assert lines_with(drawn.stdout, "... 150 more")  # under the root, where its children were cut
    assert lines_with(drawn.stdout, "... 180 more descendants not shown (280 in all")
    assert not lines_with(drawn.stdout, GRANDCHILD_KIND)


@pytest.mark.parametrize("command", ["show", "tree"])
@pytest.mark.parametrize("job_id", [UNKNOWN, "nope"])
def test_an_unknown_id_is_one_error_line(run: Run, command: str, job_id: str) -> None:
    cli_checks.assert_one_error_line(run(command, job_id), job_id)


def test_ls_filters_by_parent_and_root(run: Run, tree: Tree) -> None:
    by_parent = run("ls", "--parent", tree.running_child.id)
    assert by_parent.exit_code == 0, by_parent.output
    assert all(lines_with(by_parent.stdout, leaf.id) for leaf in tree.grandchildren)
    assert not lines_with(by_parent.stdout, tree.children[1].id)
    by_root = run("ls", "--root", tree.root.id)
    assert all(lines_with(by_root.stdout, job.id) for job in tree.children + tree.grandchildren)
    assert not lines_with(by_root.stdout, tree.root.id, ROOT_KIND)
    cli_checks.assert_one_error_line(run("ls", "--root", "nope"), "root", "not a job id")
