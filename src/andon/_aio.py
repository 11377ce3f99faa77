"""asyncio helpers that the event-loop side of andon shares."""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passed; ``True`` if it was set.

    Not ``asyncio.wait_for``: on Python 3.11 a cancellation that arrives as the wait ends
    is swallowed by it (cpython gh-86296, fixed in 3.12), and a loop around it then never
    ends: an AsyncClient's close awaited its cancelled change lookout for ever.
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()
    return event.is_set()
