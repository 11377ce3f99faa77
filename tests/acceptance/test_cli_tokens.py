"""``andon token create / ls / revoke`` through the real command line on a real SQLite file."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

import andon
from andon._access import hash_token
from andon.cli import cli


def run(db_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["token", *args, "--db", f"sqlite:///{db_path}"], env={})
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_token_once_and_stores_its_hash(db_path: Path) -> None:
    code, out, err = run(db_path, "create", "--role", "user", "--name", "alice")
    assert (code, err) == (0, "")
    tokens = re.findall(r"andon_[A-Za-z0-9_-]{43}", out)
    assert len(tokens) == 1
    assert "Authorization: Bearer" in out
    assert "cannot be shown again" in out
    with andon.SqliteStore(str(db_path)) as store:
        record = store.find_token(hash_token(tokens[0]))
        assert record is not None
        assert record.principal == andon.Principal("alice", andon.Role.USER)
    code, listed, _ = run(db_path, "ls")
    assert code == 0
    assert "alice" in listed
    assert "user" in listed
    assert tokens[0] not in listed
    assert hash_token(tokens[0]) not in listed


def test_duplicate_name_unknown_role_and_bad_name_are_clear_errors(db_path: Path) -> None:
    assert run(db_path, "create", "--name", "alice")[0] == 0
    code, _, err = run(db_path, "create", "--name", "alice", "--role", "admin")
    assert code == 1
    assert "exists already" in err
    assert "Traceback" not in err
    code, _, err = run(db_path, "create", "--name", "bob", "--role", "boss")
    assert code == 2
    assert "boss" in err
    assert "Traceback" not in err
    code, _, err = run(db_path, "create", "--name", "no spaces")
    assert code == 1
    assert "bad token name" in err
    code, _, err = run(db_path, "create", "--name", "admin", "--role", "admin")
    assert code == 1
    assert "reserved" in err


def test_revoke_marks_the_token_and_unknown_names_fail(db_path: Path) -> None:
    run(db_path, "create", "--name", "alice")
    code, out, _ = run(db_path, "revoke", "alice")
    assert code == 0
    assert "revoked token 'alice'" in out
    with andon.SqliteStore(str(db_path)) as store:
        assert [t.is_active for t in store.list_tokens()] == [False]
    code, _, err = run(db_path, "revoke", "nobody")
    assert code == 1
    assert "no token is named 'nobody'" in err
    assert "Traceback" not in err


def test_ls_with_no_tokens_says_how_to_make_one(db_path: Path) -> None:
    code, out, _ = run(db_path, "ls")
    assert code == 0
    assert "andon token create" in out
