"""A failed accession allocation leaves no unread failure behind (asyncio would log it at ERROR).

The SDK records an update-with-start's failed start on the start operation's future; radflow
never awaits that future, so asyncio reported "Future exception was never retrieved" from the
MLLP gateway whenever an allocation timed out under load (seen in the failover run).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable
from typing import Any

import pytest
from temporalio.client import Client

from radflow.service.order_errors import TemporalUnavailable
from radflow.service.ordering import OrderService
from radflow.service.unmatched import record_unmatched

pytestmark = pytest.mark.integration


async def _unread_failures(call: Awaitable[object]) -> list[str]:
    """What asyncio's exception handler reports while `call` fails with TemporalUnavailable."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with pytest.raises(TemporalUnavailable):
            await call
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    return [str(c.get("message")) for c in reported]


async def test_timed_out_allocation_leaves_no_unretrieved_future(client: Client, task_queue: str) -> None:
    service = OrderService(client, task_queue=task_queue, rpc_timeout_s=0.001)  # the server cannot answer in 1 ms

    async def not_indexed(keys: list[str]) -> dict[str, list[str]]:
        return {}  # go straight to the allocator (the index lookup has its own tests)

    service._index_lookup = not_indexed  # type: ignore[method-assign]
    assert await _unread_failures(service.allocate_accession("PLACER-TIMEOUT^HIS")) == []


async def test_timed_out_unmatched_record_leaves_no_unretrieved_future(client: Client, task_queue: str) -> None:
    call = record_unmatched(client, "study", "1.2.826.0.1.3680043.2.1125.99", {"instances": 1},
                            task_queue=task_queue, rpc_timeout_s=0.001)
    assert await _unread_failures(call) == []
