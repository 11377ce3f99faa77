"""``andon.Limits``: validated values, and only where a process can enforce them."""

from __future__ import annotations

from typing import Any

import pytest

import andon


def test_limits_are_a_frozen_value_with_nothing_limited_by_default() -> None:
    limits = andon.Limits()
    assert (limits.memory_mib, limits.cpu_s, limits.open_files) == (None, None, None)
    assert limits.describe() == "none"
    with pytest.raises(AttributeError):
        limits.cpu_s = 3  # type: ignore[misc]  # frozen on purpose
    full = andon.Limits(memory_mib=256, cpu_s=10, open_files=64)
    assert full.describe() == "memory 256 MiB, CPU 10 s, 64 open files"
    assert full == andon.Limits(memory_mib=256, cpu_s=10, open_files=64)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_mib", 0),
        ("memory_mib", -1),
        ("cpu_s", 0),
        ("cpu_s", 1.5),
        ("open_files", -8),
        ("open_files", True),
        ("memory_mib", "256"),
    ],
)
def test_limits_must_be_positive_whole_numbers(field: str, value: Any) -> None:  # Any: wrong on purpose
    with pytest.raises(andon.ConfigurationError, match=rf"Limits\({field}=.*positive whole number"):
        andon.Limits(**{field: value})


@pytest.mark.parametrize("isolation", ["thread", None])
def test_limits_on_a_thread_kind_are_refused_at_registration(isolation: str | None) -> None:
    app = andon.App()
    with pytest.raises(andon.ConfigurationError, match=r"work: resource limits need isolation='process'"):

        @app.job(isolation=isolation, limits=andon.Limits(cpu_s=5))
        def work(ctx: andon.Context) -> None: ...

    assert "work" not in app


def test_limits_on_an_async_kind_are_refused_at_registration() -> None:
    app = andon.App()
    with pytest.raises(
        andon.ConfigurationError,
        match=r"fetch: resource limits need isolation='process' \(an isolation='async' handler",
    ):

        @app.job(limits=andon.Limits(memory_mib=100))
        async def fetch(ctx: andon.Context) -> None: ...

    assert "fetch" not in app


def test_limits_must_be_a_limits_value() -> None:
    app = andon.App()
    with pytest.raises(andon.ConfigurationError, match=r"limits must be an andon\.Limits, not dict"):

        @app.job(isolation="process", limits={"cpu_s": 5})  # type: ignore[arg-type]  # wrong on purpose
        def work(ctx: andon.Context) -> None: ...


def test_a_process_kind_keeps_its_limits() -> None:
    app = andon.App()
    limits = andon.Limits(memory_mib=512, open_files=100)

    @app.job(isolation="process", limits=limits)
    def work(ctx: andon.Context) -> None: ...

    @app.job(isolation="process")
    def free(ctx: andon.Context) -> None: ...

    assert app.get("work").limits is limits
    assert app.get("free").limits is None
