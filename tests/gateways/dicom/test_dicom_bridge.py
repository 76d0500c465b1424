"""Thread -> event loop bridge: results come back, a slow Temporal call becomes TemporalUnavailable."""

from __future__ import annotations

import asyncio

import pytest

from radflow.gateways.dicom.bridge import LoopBridge
from radflow.service.ordering import TemporalUnavailable


async def test_result_and_timeout_from_a_thread() -> None:
    bridge = LoopBridge(asyncio.get_running_loop(), timeout_s=0.2)
    cancelled = asyncio.Event()

    async def answer() -> int:
        return 42

    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    assert await asyncio.to_thread(bridge.run, answer()) == 42
    with pytest.raises(TemporalUnavailable):
        await asyncio.to_thread(bridge.run, hang())
    await asyncio.wait_for(cancelled.wait(), 2)  # the abandoned call does not linger


async def test_errors_propagate_to_the_handler_thread() -> None:
    bridge = LoopBridge(asyncio.get_running_loop(), timeout_s=1)

    async def boom() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await asyncio.to_thread(bridge.run, boom())
