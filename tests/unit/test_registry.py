"""The registry: registering handlers, their settings, and validating params."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import andon
from andon import App, ConfigurationError, Context, InvalidParams, Isolation, Retry, UnknownKind
from andon._sizes import MAX_PARAMS_BYTES
from andon.examples import app as example_app


def test_kind_defaults_to_the_function_name() -> None:
    app = App()

    @app.job()
    def resize_image(ctx: Context, width: int = 10) -> None:
        """Resize an image."""

    kind = app.get("resize_image")
    assert kind.kind == "resize_image"
    assert kind.handler is resize_image
    assert kind.description == "Resize an image."
    assert "resize_image" in app
    assert [k.kind for k in app.kinds] == ["resize_image"]


def test_explicit_kind_name() -> None:
    app = App()

    @app.job("images.resize", description="Resize")
    def resize(ctx: Context) -> None: ...

    assert "images.resize" in app
    assert "resize" not in app
    assert app.get("images.resize").description == "Resize"


def test_isolation_defaults_to_async_for_coroutines_and_thread_otherwise() -> None:
    app = App()

    @app.job()
    async def fetch(ctx: Context) -> None: ...

    @app.job()
    def compute(ctx: Context) -> None: ...

    assert app.get("fetch").isolation is Isolation.ASYNC
    assert app.get("compute").isolation is Isolation.THREAD


@pytest.mark.parametrize("isolation", ["thread", "process", Isolation.PROCESS])
def test_explicit_isolation_for_plain_functions(isolation: str) -> None:
    app = App()

    @app.job(isolation=isolation)
    def compute(ctx: Context) -> None: ...

    assert app.get("compute").isolation == Isolation(isolation)


def test_async_isolation_needs_an_async_handler() -> None:
    app = App()
    with pytest.raises(ConfigurationError, match="async def"):

        @app.job(isolation="async")
        def compute(ctx: Context) -> None: ...

    assert "compute" not in app


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_async_handler_needs_async_isolation(isolation: str) -> None:
    app = App()
    with pytest.raises(ConfigurationError, match="isolation='async'"):

        @app.job(isolation=isolation)
        async def fetch(ctx: Context) -> None: ...

    assert "fetch" not in app


def test_unknown_isolation_is_rejected() -> None:
    app = App()
    with pytest.raises(ValueError, match="fiber"):

        @app.job(isolation="fiber")
        def compute(ctx: Context) -> None: ...


def test_duplicate_kind_raises() -> None:
    app = App()

    @app.job("work")
    def first(ctx: Context) -> None: ...

    with pytest.raises(ConfigurationError, match="registered twice"):

        @app.job("work")
        def second(ctx: Context) -> None: ...

    assert app.get("work").handler is first


def test_handler_without_context_is_rejected() -> None:
    app = App()
    with pytest.raises(ConfigurationError, match="context"):

        @app.job()
        def nothing() -> None: ...


def test_var_args_cannot_be_params() -> None:
    app = App()
    with pytest.raises(ConfigurationError, match=r"\*args"):

        @app.job()
        def loose(ctx: Context, **options: int) -> None: ...


def test_unknown_kind() -> None:
    app = App()

    @app.job()
    def known(ctx: Context) -> None: ...

    with pytest.raises(UnknownKind, match="known") as raised:
        app.get("missing")
    assert raised.value.kind == "missing"


def test_settings_default_to_the_app_and_can_be_overridden() -> None:
    app = App(default_timeout=30.0, default_grace=5.0)

    @app.job()
    def plain(ctx: Context) -> None: ...

    @app.job(timeout=None, grace=0.5, retry=Retry(max_attempts=3, backoff_s=2.0))
    def tuned(ctx: Context) -> None: ...

    @app.job(timeout=andon.DEFAULT)
    def explicit_default(ctx: Context) -> None: ...

    assert (app.get("plain").timeout_s, app.get("plain").grace_s) == (30.0, 5.0)
    assert app.get("plain").retry == Retry()
    assert (app.get("tuned").timeout_s, app.get("tuned").grace_s) == (None, 0.5)
    assert app.get("tuned").retry == Retry(max_attempts=3, backoff_s=2.0)
    assert app.get("explicit_default").timeout_s == 30.0


@pytest.mark.parametrize(("max_attempts", "backoff_s"), [(0, 0.0), (-1, 1.0), (1, -0.5)])
def test_retry_rejects_nonsense(max_attempts: int, backoff_s: float) -> None:
    with pytest.raises(ConfigurationError):
        Retry(max_attempts=max_attempts, backoff_s=backoff_s)


# -- params ----------------------------------------------------------------------


@pytest.fixture
def typed_app() -> App:
    app = App()

    @app.job()
    def typed(ctx: Context, name: str, count: int = 3, ratio: float = 0.5, tags: list[str] | None = None) -> None: ...

    @app.job()
    def text(ctx: Context, body: str) -> None: ...

    return app


def test_defaults_are_filled_in() -> None:
    assert example_app.get("count").validate({}) == {"n": 10, "interval_s": 0.5}
    assert example_app.get("count").validate({"n": 3}) == {"n": 3, "interval_s": 0.5}


def test_validate_returns_json_values(typed_app: App) -> None:
    clean = typed_app.get("typed").validate({"name": "x", "tags": ("a", "b")})
    assert clean == {"name": "x", "count": 3, "ratio": 0.5, "tags": ["a", "b"]}
    assert json.loads(json.dumps(clean)) == clean


def test_unknown_param_is_rejected() -> None:
    with pytest.raises(InvalidParams) as raised:
        example_app.get("count").validate({"n": 1, "colour": "red"})
    assert raised.value.kind == "count"
    assert raised.value.problems == ["colour: unknown param"]
    assert "colour" in str(raised.value)


def test_missing_required_param_is_rejected(typed_app: App) -> None:
    with pytest.raises(InvalidParams) as raised:
        typed_app.get("typed").validate({"count": 1})
    assert raised.value.problems == ["name: required"]


def test_wrong_type_is_rejected() -> None:
    with pytest.raises(InvalidParams) as raised:
        example_app.get("count").validate({"n": "abc"})
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith("n: ")
    assert "integer" in raised.value.problems[0]


def test_every_problem_is_reported(typed_app: App) -> None:
    with pytest.raises(InvalidParams) as raised:
        typed_app.get("typed").validate({"count": "many", "extra": 1})
    problems = raised.value.problems
    assert "name: required" in problems
    assert "extra: unknown param" in problems
    assert any(p.startswith("count: ") for p in problems)


def test_numeric_string_is_coerced() -> None:
    assert example_app.get("count").validate({"n": "5"}) == {"n": 5, "interval_s": 0.5}


def test_params_up_to_the_limit_are_accepted(typed_app: App) -> None:
    overhead = len(json.dumps({"body": ""}))
    body = "x" * (MAX_PARAMS_BYTES - overhead)
    assert typed_app.get("text").validate({"body": body}) == {"body": body}


def test_oversized_params_are_rejected_with_a_clear_message(typed_app: App) -> None:
    assert MAX_PARAMS_BYTES == 64 * 1024
    with pytest.raises(InvalidParams) as raised:
        typed_app.get("text").validate({"body": "x" * MAX_PARAMS_BYTES})
    size = len(json.dumps({"body": "x" * MAX_PARAMS_BYTES}))
    assert raised.value.problems == [f"params take {size} bytes, the limit is {MAX_PARAMS_BYTES}"]
    assert str(MAX_PARAMS_BYTES) in str(raised.value)


def test_params_schema_is_a_json_schema_of_the_params(typed_app: App) -> None:
    schema = example_app.get("count").params_schema()
    assert schema["type"] == "object"
    assert schema["title"] == "count"
    assert set(schema["properties"]) == {"n", "interval_s"}
    assert schema["properties"]["n"]["type"] == "integer"
    assert schema["properties"]["n"]["default"] == 10
    assert schema["properties"]["interval_s"]["type"] == "number"
    assert schema.get("required", []) == []
    assert schema["additionalProperties"] is False
    json.dumps(schema)

    typed = typed_app.get("typed").params_schema()
    assert typed["required"] == ["name"]
    assert set(typed["properties"]) == {"name", "count", "ratio", "tags"}


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
COUNT_PARAMS = st.dictionaries(st.sampled_from(["n", "interval_s"]) | st.text(max_size=10), JSON_VALUES, max_size=4)


@given(COUNT_PARAMS)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_validate_only_raises_invalid_params(params: dict[str, Any]) -> None:
    kind = example_app.get("count")
    rejected: InvalidParams | None = None
    try:
        clean = kind.validate(params)
    except InvalidParams as exc:
        rejected = exc
    if rejected is not None:
        assert rejected.problems
        assert rejected.kind == "count"
        return
    assert set(clean) == {"n", "interval_s"}
    assert isinstance(clean["n"], int)
    json.dumps(clean)
