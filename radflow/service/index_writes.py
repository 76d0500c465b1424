"""Group commit of order-index writes: one write in flight, the rest coalesced into the next one.

Every ORM NW writes its patient, placer and study keys into the order index before its AA
(radflow/service/ordering.py). Each write is one transaction on the index store
(radflow/infra/order_index_store.py): an fsync on SQLite, a round trip and a WAL flush on
PostgreSQL. Under a burst, many orders want to write at once; committing their entries
together costs one transaction instead of one per order, and at low load nothing waits
(the first write to an idle writer goes out at once).

A "bucket" is a separate queue (OrderService uses one; the legacy bucket workflows had 32).
Writes to one bucket keep their order (an add and a later forget of the same key must not
swap): queued writes are merged only with neighbours of the same operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Send = Callable[[str, int, dict[str, list[str]]], Awaitable[None]]

MAX_KEYS_PER_SIGNAL = 500  # keeps one signal's payload far below Temporal's blob size limit


@dataclass
class _Write:
    signal: str
    entries: dict[str, list[str]] = field(default_factory=dict)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def merge(self, entries: dict[str, list[str]]) -> None:
        for key, accessions in entries.items():
            held = self.entries.setdefault(key, [])
            held.extend(a for a in accessions if a not in held)


class IndexWriter:
    """Coalesces concurrent writes per bucket; each caller returns once its entries were sent."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queues: dict[int, list[_Write]] = {}
        self._flushing: dict[int, asyncio.Task[None]] = {}  # held: the loop keeps only weak references
        self.signals_sent = 0  # for benchmarks and tests: signals actually sent
        self.writes = 0  # writes asked for

    async def write(self, signal: str, bucket: int, entries: dict[str, list[str]]) -> None:
        self.writes += 1
        queue = self._queues.setdefault(bucket, [])
        tail = queue[-1] if queue else None
        if tail is None or tail.signal != signal or len(tail.entries) + len(entries) > MAX_KEYS_PER_SIGNAL:
            tail = _Write(signal)
            tail.done.add_done_callback(_consume)
            queue.append(tail)
        tail.merge(entries)
        if bucket not in self._flushing:
            self._flushing[bucket] = asyncio.get_running_loop().create_task(self._flush(bucket))
        # A caller that gives up (its deadline) must not cancel a signal that carries others' entries.
        await asyncio.shield(tail.done)

    async def _flush(self, bucket: int) -> None:
        queue = self._queues[bucket]
        try:
            while queue:
                write = queue.pop(0)
                try:
                    await self._send(write.signal, bucket, write.entries)
                except asyncio.CancelledError:
                    write.done.cancel()
                    raise
                except Exception as err:  # every waiter of this signal gets its failure
                    write.done.set_exception(err)
                else:
                    self.signals_sent += 1
                    write.done.set_result(None)
        finally:
            self._flushing.pop(bucket, None)
            for write in queue:  # only left when the flusher itself was cancelled (shutdown)
                write.done.cancel()
            queue.clear()


def _consume(future: asyncio.Future[None]) -> None:
    # A waiter that already gave up never reads the outcome; read it here so asyncio does not log it.
    if not future.cancelled():
        future.exception()
