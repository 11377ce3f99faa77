"""The app: a registry mapping job kinds to handlers, with per-kind settings."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

from andon._errors import ConfigurationError, InvalidParams, ParamsTooLarge, UnknownKind
from andon._keys import OnConflict
from andon._schedules import CatchUp, ScheduleSpec
from andon._sizes import MAX_PARAMS_BYTES

if TYPE_CHECKING:
    import pydantic  # imported when the first kind is registered: a CLI start-up without an app skips it

__all__ = ["App", "Isolation", "JobKind", "Limits", "Retry"]

Handler = Callable[..., Any]  # Any: handlers take the context plus their own typed params
F = TypeVar("F", bound=Handler)


class Isolation(enum.StrEnum):
    """How a handler runs, and so which stop it is guaranteed.

    * ``async`` - an asyncio task; cancelled at its current ``await`` at once.
    * ``thread`` - a worker thread; cooperative, then ``Cancelled`` injected after the
      grace period (pure-Python code only), then abandoned if it is stuck in C code.
    * ``process`` - a child process; cooperative, then SIGTERM, then SIGKILL: always stops.
    """

    ASYNC = "async"
    THREAD = "thread"
    PROCESS = "process"


@final
@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy: ``max_attempts`` failed attempts in all, waiting ``backoff_s * 2**(n-1)``.

    With ``resume=True`` an attempt after a failure starts from the job's last checkpoint
    (``ctx.checkpoint``) instead of from scratch. Attempts interrupted by a shutdown, a lost
    worker, a lost lease or a pause always resume.
    """

    max_attempts: int = 1
    backoff_s: float = 0.0
    resume: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_s < 0:
            raise ConfigurationError("Retry needs max_attempts >= 1 and backoff_s >= 0")


@final
@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for the child process of a ``process``-isolated kind.

    Applied with ``setrlimit`` in the child before the handler runs; ``None`` leaves a
    resource unlimited (as the worker is). Only process isolation can enforce them: a
    thread or a task shares the worker's process, so registering limits on one is an error.

    Attributes:
        memory_mib: address space (``RLIMIT_AS``) in MiB, the interpreter included (a
            fresh child takes roughly 100-200 MiB of it). Past it, allocations fail: the
            handler gets ``MemoryError`` and the job fails naming the limit.
        cpu_s: CPU seconds (``RLIMIT_CPU``). Past it, the handler gets an exception (its
            cleanups run) and the job fails naming the limit; a handler stuck in C code is
            killed by the kernel a grace period later.
        open_files: file descriptors the process may hold (``RLIMIT_NOFILE``), those it
            already holds included (about ten). Past it, opening fails with ``EMFILE``.
    """

    memory_mib: int | None = None
    cpu_s: int | None = None
    open_files: int | None = None

    def __post_init__(self) -> None:
        for name in ("memory_mib", "cpu_s", "open_files"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"Limits({name}={value!r}): give a positive whole number, or None")

    def describe(self) -> str:
        """The limits in words, e.g. ``"memory 256 MiB, CPU 10 s"``."""
        parts = []
        if self.memory_mib is not None:
            parts.append(f"memory {self.memory_mib} MiB")
        if self.cpu_s is not None:
            parts.append(f"CPU {self.cpu_s} s")
        if self.open_files is not None:
            parts.append(f"{self.open_files} open files")
        return ", ".join(parts) or "none"


class _Default(enum.Enum):
    TOKEN = "default"


DEFAULT: Final = _Default.TOKEN
"""Sentinel: "use the app's default" (as opposed to ``None``, meaning "no timeout")."""


@final
@dataclass(frozen=True, slots=True)
class JobKind:
    """A registered handler and its settings."""

    kind: str
    handler: Handler
    isolation: Isolation
    timeout_s: float | None
    grace_s: float
    retry: Retry
    description: str
    params_model: type[pydantic.BaseModel] = field(repr=False)
    limits: Limits | None = None
    """Resource limits of the handler's process (``process`` isolation only)."""
    max_running: int | None = None
    """At most this many jobs of the kind running or cancelling at once, across all workers."""
    rate: tuple[int, float] | None = None
    """At most ``rate[0]`` starts of the kind within any ``rate[1]`` seconds, across all workers."""
    grace_always: bool = False
    """The kind set ``grace=`` itself: every handler of it gets that grace before it is
    stopped by force, whether it listens or not (``andon._stop.first_grace``). Otherwise the
    app's default grace goes only to handlers that listen."""

    def params_schema(self) -> dict[str, Any]:  # Any: a JSON schema document
        """The JSON schema of this kind's params (for forms and API docs)."""
        return self.params_model.model_json_schema()

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:  # Any: JSON values
        """Check params against the handler's signature; returns them with defaults filled in.

        Raises:
            InvalidParams: a param is missing, unknown, or of the wrong type.
            ParamsTooLarge: the params take more than ``MAX_PARAMS_BYTES`` as JSON.
        """
        import pydantic  # loaded already: this kind's model is one

        try:
            model = self.params_model.model_validate(dict(params))
            clean: dict[str, Any] = model.model_dump(mode="json")
            size = len(json.dumps(clean))
        except pydantic.ValidationError as exc:
            raise InvalidParams(self.kind, [_describe(e) for e in exc.errors()]) from None
        except (TypeError, ValueError) as exc:
            raise InvalidParams(self.kind, [f"params must be JSON values ({exc})"]) from None
        if size > MAX_PARAMS_BYTES:
            raise ParamsTooLarge(self.kind, size, MAX_PARAMS_BYTES)
        return clean


def _describe(error: Any) -> str:  # Any: pydantic's ErrorDetails TypedDict
    where = ".".join(str(part) for part in error["loc"]) or "params"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown param"
    if error["type"] == "missing":
        return f"{where}: required"
    return f"{where}: {error['msg']}"


@final
class App:
    """A set of job kinds. Register handlers with :meth:`job`.

    Args:
        default_timeout: seconds a job may run before it is cancelled with reason
            ``timeout``, for kinds that do not set their own; ``None`` for no limit.
        default_grace: seconds a handler that listens (it has reached a cancel point,
            such as ``ctx.check()``, or read ``ctx.cancelled``) gets to stop by itself before
            andon escalates; one that has not is stopped by force at once. A kind's own
            ``grace=`` is given to all of its handlers, listening or not.
    """

    def __init__(self, *, default_timeout: float | None = None, default_grace: float = 2.0) -> None:
        self.default_timeout = default_timeout
        self.default_grace = default_grace
        self._kinds: dict[str, JobKind] = {}
        self._schedules: dict[str, ScheduleSpec] = {}

    def job(
        self,
        kind: str | None = None,
        *,
        isolation: Isolation | str | None = None,
        timeout: float | _Default | None = DEFAULT,
        grace: float | None = None,
        retry: Retry | None = None,
        description: str | None = None,
        limits: Limits | None = None,
        max_running: int | None = None,
        rate: tuple[int, float] | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of ``kind`` (default: its name).

        The handler takes a :class:`~andon.Context` first, then its params as keyword
        arguments with type annotations (they are validated before a job is created).
        ``isolation`` defaults to ``async`` for coroutine functions and ``thread`` otherwise.
        ``limits`` (:class:`~andon.Limits`) caps the memory, CPU time and open files of the
        handler's process; only ``isolation="process"`` can enforce them.

        ``max_running`` and ``rate`` limit the kind across every worker of the store: never
        more than ``max_running`` of its jobs running or cancelling at once, and at most
        ``rate[0]`` starts (retried attempts included) within any ``rate[1]`` seconds (a
        sliding window). Workers store them as they start; the store enforces them in each
        claim. A job held back stays ``queued`` (a cancel withdraws it at once) and other
        kinds' jobs go on being claimed. Workers of one store should run the same app: the
        last worker to start with a kind sets its limits.

        Raises:
            ConfigurationError: the kind is registered twice, the isolation does not fit
                the handler, ``limits`` are given for a kind that is not process-isolated,
                or ``max_running`` or ``rate`` is not a positive count (and window).
        """
        checked_rate = _checked_rate(kind, rate)
        if max_running is not None and (
            isinstance(max_running, bool) or not isinstance(max_running, int) or max_running < 1
        ):
            raise ConfigurationError(f"{kind or 'job'}: max_running={max_running!r}: give a positive whole number")

        def register(function: F) -> F:
            name = kind or function.__name__
            if name in self._kinds:
                raise ConfigurationError(f"job kind {name!r} is registered twice")
            is_async = inspect.iscoroutinefunction(function)
            chosen = Isolation(isolation) if isolation else (Isolation.ASYNC if is_async else Isolation.THREAD)
            if chosen is Isolation.ASYNC and not is_async:
                raise ConfigurationError(f"{name}: isolation='async' needs an async def handler")
            if chosen is not Isolation.ASYNC and is_async:
                raise ConfigurationError(f"{name}: an async def handler needs isolation='async'")
            if limits is not None and not isinstance(limits, Limits):
                raise ConfigurationError(f"{name}: limits must be an andon.Limits, not {type(limits).__name__}")
            if limits is not None and chosen is not Isolation.PROCESS:
                raise ConfigurationError(
                    f"{name}: resource limits need isolation='process' (an isolation={chosen.value!r} "
                    "handler shares the worker's process, which cannot be limited alone)"
                )
            self._kinds[name] = JobKind(
                kind=name,
                handler=function,
                isolation=chosen,
                timeout_s=self.default_timeout if timeout is DEFAULT else timeout,
                grace_s=self.default_grace if grace is None else grace,
                grace_always=grace is not None,
                retry=retry or Retry(),
                description=description or inspect.getdoc(function) or "",
                params_model=_params_model(name, function),
                limits=limits,
                max_running=max_running,
                rate=checked_rate,
            )
            return function

        return register

    def periodic(
        self,
        name: str,
        *,
        cron: str | None = None,
        every: float | None = None,
        kind: str | None = None,
        params: Mapping[str, Any] | None = None,  # Any: JSON values
        overlap: OnConflict | str = OnConflict.SKIP,
        catch_up: CatchUp | str = CatchUp.LATEST,
        timezone: str = "UTC",
        priority: int = 0,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Declare a schedule: a job of ``kind`` with ``params`` at every tick of ``cron``
        (five fields, read in ``timezone``, an IANA name) or ``every`` seconds.

        Call it for a kind registered elsewhere (``app.periodic("nightly", cron="0 3 * * *",
        kind="report")``) or stack it above ``@app.job`` on the handler, whose kind it then
        takes. The schedule is stored (and changed, or removed when no longer declared) by
        each worker as it starts; workers of one store should run the same app. Any worker's
        scheduler may fire it: one leads at a time.

        Args:
            overlap: a tick while the schedule's job is still active: ``skip`` (the default;
                recorded), ``queue`` (at most one waits), ``supersede`` (the active job is
                stopped with reason ``superseded``).
            catch_up: ticks that came due while no scheduler ran: ``latest`` (the default:
                fire only the most recent; the others are one ``missed`` trace), ``all``, or
                ``none``.
            timeout: the jobs' timeout; the kind's when ``None``.

        Raises:
            InvalidSchedule: a bad name, cron expression, interval, time zone or policy.
            ConfigurationError: the name is declared twice, or no kind is given and the
                decorated function is not a registered handler.
            InvalidParams: ``params`` do not fit the kind (checked when it is registered).
        """
        spec = ScheduleSpec(
            name=name,
            kind=kind or "-",
            params=dict(params or {}),
            cron=cron,
            every_s=every,
            timezone=timezone,
            overlap=overlap,  # type: ignore[arg-type]  # a word: ScheduleSpec checks and converts it
            catch_up=catch_up,  # type: ignore[arg-type]  # the same
            priority=priority,
            timeout_s=timeout,
        )
        if name in self._schedules:
            raise ConfigurationError(f"schedule {name!r} is declared twice")
        if kind is not None:
            self._add_schedule(spec)

        def declare(function: F) -> F:
            if kind is None:
                found = [k.kind for k in self._kinds.values() if k.handler is function]
                if not found:
                    raise ConfigurationError(f"schedule {name!r}: put @app.periodic above @app.job, or give kind=")
                self._add_schedule(dataclasses.replace(spec, kind=found[0]))
            return function

        return declare

    def _add_schedule(self, spec: ScheduleSpec) -> None:
        if spec.kind in self._kinds:
            self._kinds[spec.kind].validate(spec.params)
        self._schedules[spec.name] = spec

    @property
    def schedules(self) -> list[ScheduleSpec]:
        """The schedules this app declares (``@app.periodic``), by name."""
        return [self._schedules[name] for name in sorted(self._schedules)]

    def get(self, kind: str) -> JobKind:
        """The registered kind. Raises :class:`~andon.UnknownKind`."""
        try:
            return self._kinds[kind]
        except KeyError:
            raise UnknownKind(kind, list(self._kinds)) from None

    @property
    def kinds(self) -> list[JobKind]:
        return sorted(self._kinds.values(), key=lambda k: k.kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds


def _checked_rate(kind: str | None, rate: object) -> tuple[int, float] | None:
    """``rate`` as ``(starts, seconds)``; a clear error for anything else."""
    if rate is None:
        return None
    if isinstance(rate, tuple) and len(rate) == 2:
        starts, seconds = rate
        if (
            isinstance(starts, int)
            and not isinstance(starts, bool)
            and starts >= 1
            and isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and seconds > 0
        ):
            return starts, float(seconds)
    raise ConfigurationError(
        f"{kind or 'job'}: rate={rate!r}: give (starts, seconds), e.g. rate=(5, 1.0) for 5 starts a second"
    )


def _params_model(kind: str, function: Handler) -> type[pydantic.BaseModel]:
    """A pydantic model of the handler's keyword params (everything after the context)."""
    import pydantic

    try:
        hints = inspect.get_annotations(function, eval_str=True)
    except Exception as exc:
        raise ConfigurationError(f"{kind}: cannot read the handler's annotations: {exc}") from exc
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters:
        raise ConfigurationError(f"{kind}: a handler takes the job context as its first argument")
    fields: dict[str, Any] = {}  # Any: pydantic's (type, default) field definitions
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ConfigurationError(f"{kind}: *args/**kwargs cannot be described as params")
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    config = pydantic.ConfigDict(extra="forbid", title=kind)
    model: type[pydantic.BaseModel] = pydantic.create_model(f"{kind}_params", __config__=config, **fields)
    return model
