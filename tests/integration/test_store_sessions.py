"""Dashboard sessions in the store, on every store (a manual clock judges expiry): found by
any store object of the database, ended by a close or by revoking their token, refused once
expired and then pruned, and capped per token."""

from __future__ import annotations

import pytest

import andon
from andon._access import hash_token
from andon._storage._engine import StoreEngine
from tests.integration.conftest import Backend

TTL_S = 3600.0
MAC = "m" * 64


def _token(store: StoreEngine, name: str) -> str:
    token_hash = hash_token(f"andon_{name}-secret")
    store.create_token(name, andon.Role.USER, token_hash)
    return token_hash


def _session(n: int) -> str:
    return hash_token(f"cookie-{n}")


def test_a_session_is_found_with_its_token_by_any_store_of_the_database(backend: Backend) -> None:
    store = backend.store
    alice = _token(store, "alice")
    opened = store.open_session(_session(1), alice, None, TTL_S)
    assert (opened.token_hash, opened.own_token_mac) == (alice, None)
    assert opened.expires_at == pytest.approx(opened.created_at + TTL_S)
    peer = backend.peer()
    try:
        found = peer.find_session(_session(1))
        assert found == opened
        assert found.token is not None
        assert found.token.principal == andon.Principal("alice", andon.Role.USER)
        assert found.token.is_active
        assert peer.find_session(_session(2)) is None
        assert peer.close_session(_session(1)) is True
        assert store.find_session(_session(1)) is None
        assert store.close_session(_session(1)) is False
    finally:
        if peer is not store:
            peer.close()


def test_a_session_of_a_servers_own_token_keeps_only_its_mac(backend: Backend) -> None:
    store = backend.store
    opened = store.open_session(_session(1), None, MAC, TTL_S)
    assert (opened.token_hash, opened.token, opened.own_token_mac) == (None, None, MAC)
    assert store.find_session(_session(1)) == opened


def test_an_expired_session_is_refused_then_pruned_by_a_later_open(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    alice = _token(store, "alice")
    store.open_session(_session(1), alice, None, TTL_S)
    clock.step_wall(TTL_S - 1)
    assert store.find_session(_session(1)) is not None
    clock.step_wall(1)
    assert store.find_session(_session(1)) is None  # expires_at is not "still valid"
    store.open_session(_session(2), None, MAC, TTL_S)  # another caller's open prunes it
    clock.step_wall(-TTL_S)  # back to when it was valid: the row is gone, not just hidden
    assert store.find_session(_session(1)) is None
    assert store.find_session(_session(2)) is not None


def test_revoking_a_token_ends_its_sessions_and_no_other(backend: Backend) -> None:
    store = backend.store
    alice, bob = _token(store, "alice"), _token(store, "bob")
    store.open_session(_session(1), alice, None, TTL_S)
    store.open_session(_session(2), bob, None, TTL_S)
    store.open_session(_session(3), None, MAC, TTL_S)
    store.revoke_token("alice")
    assert store.find_session(_session(1)) is None
    assert store.find_session(_session(2)) is not None
    assert store.find_session(_session(3)) is not None
    # One opened from a token revoked meanwhile (a server's token lookup is cached for a
    # moment) comes with the token's revoked row, for the server to refuse.
    late = store.open_session(_session(4), alice, None, TTL_S)
    assert late.token is not None
    assert not late.token.is_active


def test_each_token_keeps_only_its_newest_sessions(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    alice, bob = _token(store, "alice"), _token(store, "bob")
    store.open_session(_session(100), bob, None, TTL_S)
    store.open_session(_session(200), None, MAC, TTL_S)
    for n in range(5):
        store.open_session(_session(n), alice, None, TTL_S, keep=3)
        clock.step_wall(1)
    assert [store.find_session(_session(n)) is not None for n in range(5)] == [False, False, True, True, True]
    assert store.find_session(_session(100)) is not None
    assert store.find_session(_session(200)) is not None


@pytest.mark.parametrize(
    ("token_hash", "mac", "ttl_s", "keep"),
    [
        (None, None, TTL_S, 3),
        ("t" * 64, MAC, TTL_S, 3),
        ("t" * 64, None, 0.0, 3),
        ("t" * 64, None, float("nan"), 3),
        ("t" * 64, None, TTL_S, 0),
    ],
)
def test_a_session_that_cannot_be_is_refused(
    store: StoreEngine, token_hash: str | None, mac: str | None, ttl_s: float, keep: int
) -> None:
    with pytest.raises(andon.UsageError):
        store.open_session(_session(1), token_hash, mac, ttl_s, keep=keep)
    assert store.find_session(_session(1)) is None
