"""The change counter an AsyncClient's lookout waits on must let itself be cancelled."""

from __future__ import annotations

import asyncio

import pytest

from andon._storage._async_watch import Generations


def test_a_wait_cancelled_as_its_change_arrives_is_cancelled() -> None:
    """The change and the cancel in one turn of the loop: the cancel must not be lost (with
    asyncio.wait_for on Python 3.11 it was, and the AsyncClient's close hung for ever)."""

    async def main() -> None:
        changes = Generations()
        waiting = asyncio.create_task(changes.wait(0, 10.0))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # waiting is now parked on the change
        changes.bump()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())


def test_a_wait_returns_at_a_change_or_after_its_time() -> None:
    async def main() -> None:
        changes = Generations()
        assert await changes.wait(0, 0.01) == 0
        waiting = asyncio.create_task(changes.wait(0, 10.0))
        await asyncio.sleep(0)
        changes.bump()
        assert await asyncio.wait_for(waiting, 5.0) == 1
        assert await changes.wait(0, 10.0) == 1  # already past: no wait

    asyncio.run(main())
