"""``AsyncClient`` is ``Client`` as coroutines: the same operations, under the same names,
with the same arguments (STYLE.md: an async twin keeps the signature of its sync form)."""

from __future__ import annotations

import inspect

import andon

# Not operations on the store, or not turned into coroutines (with the reason).
_NOT_TWINS = {
    "acting_as",  # returns a client at once
    "close",  # a coroutine too, but takes nothing to compare
    "export_results",  # lazily iterated file (left for later: use result_pages)
    "result_pages",  # an async iterator, compared below
}


def _operations(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and name not in _NOT_TWINS
    }


def test_every_client_operation_has_an_async_twin_with_the_same_arguments() -> None:
    sync = _operations(andon.Client)
    twins = _operations(andon.AsyncClient)
    assert sorted(set(sync) - set(twins)) == []
    for name, signature in sync.items():
        twin = twins[name]
        assert list(twin.parameters.values()) == list(signature.parameters.values()), name
        assert twin.return_annotation == signature.return_annotation, name
        assert inspect.iscoroutinefunction(getattr(andon.AsyncClient, name)), name


def test_the_async_only_operations() -> None:
    assert inspect.isasyncgenfunction(andon.AsyncClient.watch)
    assert inspect.isasyncgenfunction(andon.AsyncClient.result_pages)
    assert inspect.iscoroutinefunction(andon.AsyncClient.close)
    assert list(inspect.signature(andon.AsyncClient.result_pages).parameters) == list(
        inspect.signature(andon.Client.result_pages).parameters
    )
