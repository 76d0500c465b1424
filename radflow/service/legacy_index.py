"""The order index as it was before the read-model database: OrderIndex bucket workflows.

Orders indexed by an older radflow live only in those buckets (workflows/order_index.py,
still registered). They must still be found exactly, but a fresh install must pay nothing
for them: which buckets exist is asked once per process (a describe per bucket id, on the
first lookup that needs it), and only buckets that exist are ever queried or signalled.

A bucket created later by a process of the old version is not seen by a process that
already looked: upgrade every gateway, API and worker together (docs/workflow.md "Upgrades").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client

from radflow.domain import definitions as d
from radflow.domain.order_index import IndexEntries, IndexLookup, by_bucket
from radflow.service.order_errors import OrderNotFound

T = TypeVar("T")
Guard = Callable[[Awaitable[T]], Awaitable[T]]


class LegacyIndex:
    def __init__(self, client: Client, task_queue: str, guard: Guard, rpc_timeout) -> None:
        self.client = client
        self.task_queue = task_queue
        self._guard = guard
        self._rpc_timeout = rpc_timeout
        self._buckets: asyncio.Task[frozenset[int]] | None = None
        self.queries = 0  # lookups sent to buckets (tests: a fresh install sends none)
        self.describes = 0  # existence checks sent (tests: once per bucket id per process)

    def _handle(self, bucket: int):
        return self.client.get_workflow_handle(d.index_workflow_id(self.task_queue, bucket))

    async def buckets(self) -> frozenset[int]:
        """The bucket ids that exist, found once (concurrent callers share the answer)."""
        if self._buckets is None or (self._buckets.done() and self._buckets.exception() is not None):
            self._buckets = asyncio.get_running_loop().create_task(self._find_buckets())
        return await asyncio.shield(self._buckets)

    async def _find_buckets(self) -> frozenset[int]:
        async def exists(bucket: int) -> bool:
            self.describes += 1
            try:
                await self._guard(self._handle(bucket).describe(rpc_timeout=self._rpc_timeout))
            except OrderNotFound:
                return False
            return True

        found = await asyncio.gather(*(exists(b) for b in range(d.INDEX_BUCKETS)))
        return frozenset(b for b, there in enumerate(found) if there)

    async def lookup(self, keys: list[str]) -> dict[str, list[str]]:
        existing = await self.buckets()
        out: dict[str, list[str]] = {}
        for bucket, part in by_bucket({k: [] for k in keys}).items():
            if bucket not in existing:
                continue
            self.queries += 1
            found = await self._guard(self._handle(bucket).query(
                d.INDEX_LOOKUP_QUERY, IndexLookup(keys=list(part)), result_type=dict[str, list[str]],
                rpc_timeout=self._rpc_timeout))
            out.update({k: v for k, v in found.items() if v})
        return out

    async def forget(self, entries: dict[str, list[str]]) -> None:
        """Remove entries from the buckets that exist (a merge moved them, or their order finished)."""
        existing = await self.buckets()
        for bucket, part in by_bucket(entries).items():
            if bucket not in existing:
                continue
            try:
                await self._guard(self._handle(bucket).signal(d.INDEX_FORGET_SIGNAL, IndexEntries(entries=part),
                                                              rpc_timeout=self._rpc_timeout))
            except OrderNotFound:  # an operator terminated the bucket: nothing left to forget there
                continue
