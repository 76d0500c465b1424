"""From a pynetdicom handler thread to the gateway's asyncio loop (the Temporal client).

pynetdicom runs every association in its own thread; the Temporal client belongs to
the event loop. A handler submits the coroutine to that loop and waits a bounded time:
past it the caller answers a failure status (never success), as if Temporal were down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

from radflow.service.ordering import TemporalUnavailable

T = TypeVar("T")


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        if self.loop.is_closed():
            coro.close()
            raise TemporalUnavailable("gateway event loop is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s if timeout_s is not None else self.timeout_s)
        except concurrent.futures.TimeoutError as err:
            future.cancel()
            raise TemporalUnavailable("no answer from Temporal in time") from err
