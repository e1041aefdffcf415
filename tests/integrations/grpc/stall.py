"""How long an event loop stands still: a heartbeat task beside the work. Imports nothing of
gcptoken's, so a fresh process can measure its first RPC with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def longest_stall(work: Callable[[], Awaitable[T]], beat: float = 0.005) -> tuple[T, float]:
    """``work()``'s result, and the longest the loop went without running a ``beat`` heartbeat meanwhile."""
    longest, last, done = 0.0, time.monotonic(), False

    async def heartbeat() -> None:
        nonlocal longest, last
        while not done:
            await asyncio.sleep(beat)
            now = time.monotonic()
            longest, last = max(longest, now - last), now

    beating = asyncio.create_task(heartbeat())
    try:
        await asyncio.sleep(beat * 2)
        longest = 0.0  # from here: the task's own start is no stall of the work's
        return await work(), longest
    finally:
        done = True
        await beating
