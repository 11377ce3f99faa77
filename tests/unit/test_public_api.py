"""The public API: ``andon.__all__`` is exactly what the package exposes, under the name ``andon``."""

from __future__ import annotations

import types

import andon


def _public_names() -> set[str]:
    """Names a user sees on ``andon``: not private, not a submodule, not a ``__future__`` flag."""
    names = set()
    for name in dir(andon):
        value = getattr(andon, name)
        if name.startswith("_") or isinstance(value, types.ModuleType) or type(value).__module__ == "__future__":
            continue
        names.add(name)
    return names


def test_all_lists_exactly_the_public_names() -> None:
    exported = set(andon.__all__)
    assert len(exported) == len(andon.__all__), "__all__ has duplicates"
    assert exported - {"__version__"} == _public_names()


def test_all_names_exist() -> None:
    missing = [name for name in andon.__all__ if not hasattr(andon, name)]
    assert missing == []


def test_version_is_exported() -> None:
    assert "__version__" in andon.__all__
    assert isinstance(andon.__version__, str)
    assert andon.__version__


def test_exported_classes_live_in_andon() -> None:
    classes = {name: getattr(andon, name) for name in andon.__all__ if isinstance(getattr(andon, name), type)}
    assert classes, "no classes exported"
    wrong = {name: cls.__module__ for name, cls in classes.items() if cls.__module__ != "andon"}
    assert wrong == {}


def test_cancelled_cannot_be_swallowed_by_except_exception() -> None:
    assert issubclass(andon.Cancelled, BaseException)
    assert not issubclass(andon.Cancelled, Exception)


def test_errors_derive_from_andon_error() -> None:
    for name in (
        "ConfigurationError",
        "InvalidParams",
        "InvalidTransition",
        "JobFinished",
        "JobNotFound",
        "LifecycleError",
        "StorageBusy",
        "StorageError",
        "StorageUnavailable",
        "UnknownKind",
        "UsageError",
        "WaitTimeout",
    ):
        error = getattr(andon, name)
        assert issubclass(error, andon.AndonError), name
    assert issubclass(andon.JobFinished, andon.InvalidTransition)
    assert issubclass(andon.WaitTimeout, TimeoutError)
    assert issubclass(andon.StorageBusy, andon.StorageError)
