"""Bounded polling for eventually consistent reads (visibility, background steps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(fetch: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 15.0,
                     every_s: float = 0.1) -> T:
    """Call `fetch` until `ok(result)`; on timeout return the last result so the assert shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await fetch()
        if ok(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every_s)
