"""Once every component is up, the runner freezes the startup heap (radflow/infra/heap.py)."""

from __future__ import annotations

import asyncio
import gc

from radflow.runner import run_components


class _Quick:
    name = "quick"

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.frozen_at_start = -1

    async def start(self) -> None:
        self.frozen_at_start = gc.get_freeze_count()
        self.task = asyncio.create_task(asyncio.sleep(0))  # ends at once: the runner stops

    async def stop(self) -> None:
        pass

    def endpoints(self) -> list[tuple[str, str]]:
        return []

    def failed(self) -> asyncio.Task | None:
        return self.task


async def test_the_heap_is_frozen_after_the_components_start() -> None:
    gc.unfreeze()
    comp = _Quick()
    banner_saw: list[int] = []
    try:
        await run_components([comp], banner=lambda started: banner_saw.append(gc.get_freeze_count()) or "up")
        assert comp.frozen_at_start == 0  # not before the components loaded what they need
        assert banner_saw and banner_saw[0] > 10_000  # the interpreter, pytest and radflow's imports
    finally:
        gc.unfreeze()
