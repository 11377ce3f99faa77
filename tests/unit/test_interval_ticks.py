"""Interval ticks are one float each, however they are reached (issue 17): a tick is always
``k * every_s`` for a whole k, so two schedulers, or a catch-up and a plain tick, can never
record one tick under two slightly different times (the tick's time is its identity in
``andon_ticks``; two floats for one tick would fire it twice). Found by the two-scheduler
process test under a CPU hog: a catch-up's ``next_at + (count - 1) * every_s`` and another
scheduler's ``k * every_s`` differed in the last bit."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from andon._schedules import CatchUp, ScheduleSpec, plan_ticks

EVERY = st.sampled_from([0.05, 0.1, 0.3, 1.7, 7.0, 60.0])
MOMENT = st.floats(min_value=1.7e9, max_value=1.9e9, allow_nan=False)


def canonical(t: float, every: float) -> bool:
    return t == round(t / every) * every


@given(every=EVERY, t=MOMENT)
def test_the_tick_after_any_moment_is_canonical_and_after_it(every: float, t: float) -> None:
    spec = ScheduleSpec("s", "k", every_s=every)
    tick = spec.next_after(t)
    assert tick > t
    assert canonical(tick, every)
    following = spec.next_after(tick)
    assert canonical(following, every)
    assert round(following / every) == round(tick / every) + 1, "a tick is not after itself, nor skips one"


@given(every=EVERY, t=MOMENT, late=st.floats(min_value=0, max_value=500), catch_up=st.sampled_from(list(CatchUp)))
# Found by this test: next_at + 0.1 rounds to exactly the following tick, which the plan
# counted from the difference (0.0999999...) as not yet due and named as the next one.
@example(every=0.1, t=1700000000.0, late=0.1, catch_up=CatchUp.LATEST)
def test_every_time_a_plan_names_is_a_canonical_tick(every: float, t: float, late: float, catch_up: CatchUp) -> None:
    spec = ScheduleSpec("s", "k", every_s=every, catch_up=catch_up)
    next_at = spec.next_after(t)
    now = next_at + late
    plan = plan_ticks(spec, next_at, now)
    named = [plan.next_at]
    if plan.fire is not None:
        named.append(plan.fire)
        assert plan.fire <= now
    if plan.missed is not None:
        first, count, last = plan.missed
        named += [first, last]
        assert round(last / every) - round(first / every) == count - 1
    assert all(canonical(x, every) for x in named), named
    assert plan.next_at > now or catch_up is CatchUp.ALL
