"""Closed orders' PHI leaves the local stores after the retention period (issue 10.5).

The order workflow keeps a closed order for RADFLOW_RETENTION_AFTER_CLOSE_HOURS (corrections
still arrive), then completes. The read models and stores outside Temporal hold copies of
its patient data; each process purges the stores it owns, periodically, for orders closed at
or before `now - retention`:

- the worklist row is scrubbed to accession, version and status (`worker` and `dicom`);
- report documents of the order are deleted (`worker`, which reads them for delivery);
- MPPS instances of the order lose their attributes (`dicom`; unmatched ones are kept:
  they are an open exception);
- the order's rows leave the order index (`worker`): its patient key holds the MRN (or its token);
- spooled studies of the order are removed once every instance reached the archive (`dicom`;
  without an archive the spool is the image store and keeps them).

When an order closed comes from the worklist sync (`closed_orders`, written with the row), so
the purge needs the "worklist" sync consumer. The clock is injected (`now`), never slept on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from radflow.domain.dicom.mwl import version_of
from radflow.infra.attachments import delete_attachment

log = logging.getLogger("radflow.retention")


@dataclass
class PurgeResult:
    orders: int = 0
    documents: int = 0
    mpps: int = 0
    studies: int = 0
    index_rows: int = 0

    def __bool__(self) -> bool:
        return bool(self.orders or self.documents or self.mpps or self.studies or self.index_rows)


@dataclass
class RetentionPurge:
    retention: timedelta
    worklist: Any  # WorklistReadModel: note_closure / due_for_purge / closed_before / purge
    attachments: Any = None
    mpps: Any = None
    spool: Any = None
    order_index: Any = None  # OrderIndexStore (radflow/infra/order_index_store.py)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings, worklist, **stores: Any) -> RetentionPurge:
        return cls(timedelta(hours=settings.retention_after_close_hours), worklist, **stores)

    def purge_once(self, now: datetime | None = None) -> PurgeResult:
        now = now or self.clock()
        cutoff = version_of(now - self.retention)
        result = PurgeResult()

        def closed(accessions: set[str]) -> set[str]:
            return self.worklist.closed_before(cutoff, accessions)

        # The other stores first: they find their orders through the worklist's closure notes.
        if self.mpps is not None:
            result.mpps = self.mpps.purge_closed(closed)
        if self.spool is not None:
            result.studies = self.spool.purge_closed(closed)
        while due := self.worklist.due_for_purge(cutoff):
            if self.attachments is not None:
                for _, hashes in due:
                    result.documents += sum(delete_attachment(self.attachments, sha) for sha in hashes)
            elif any(hashes for _, hashes in due):
                # Documents are another process' (the worker's) to delete: leave those orders to it.
                due = [(acc, hashes) for acc, hashes in due if not hashes]
                if not due:
                    break
            if self.order_index is not None:
                # Before the worklist marks them purged: a failure here leaves them due for the next round.
                result.index_rows += self.order_index.drop_accessions([acc for acc, _ in due])
            self.worklist.purge([acc for acc, _ in due], version_of(now))
            result.orders += len(due)
        if result:
            log.info("closed orders purged after retention", extra={
                "orders": result.orders, "documents": result.documents, "mpps": result.mpps, "studies": result.studies,
                "index_rows": result.index_rows})
        return result

    async def run(self, interval_s: float) -> None:
        """Purge every `interval_s` for as long as the process lives (cancel to stop)."""
        while True:
            try:
                await asyncio.to_thread(self.purge_once)
            except Exception as err:  # a locked or unreachable store: try again next round
                log.warning("retention purge failed; retried next round", extra={"error": str(err)[:300]})
            await asyncio.sleep(interval_s)
