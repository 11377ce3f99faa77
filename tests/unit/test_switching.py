"""The switch interval while handlers run on worker threads (``andon._runtimes._switching``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from andon._runtimes._switching import HANDOFF_S, handing_off


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_it_is_short_while_a_handler_runs_and_comes_back_after() -> None:
    with handing_off():
        assert sys.getswitchinterval() == pytest.approx(HANDOFF_S)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_it_stays_short_until_the_last_of_several_handlers_ends() -> None:
    first, second = handing_off(), handing_off()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(HANDOFF_S)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_it_comes_back_when_the_handler_raises() -> None:
    with pytest.raises(RuntimeError), handing_off():
        raise RuntimeError("the handler failed")
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_shorter_interval_already_set_is_left_alone() -> None:
    sys.setswitchinterval(0.0001)
    shorter = sys.getswitchinterval()  # as the interpreter keeps it (whole microseconds)
    with handing_off():
        assert sys.getswitchinterval() == shorter
    assert sys.getswitchinterval() == shorter


def test_an_interval_someone_set_meanwhile_stays() -> None:
    with handing_off():
        sys.setswitchinterval(0.002)
    assert sys.getswitchinterval() == pytest.approx(0.002)
    with handing_off():  # and the next handler lowers it again, and gives theirs back
        assert sys.getswitchinterval() == pytest.approx(HANDOFF_S)
    assert sys.getswitchinterval() == pytest.approx(0.002)
