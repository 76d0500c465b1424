"""Report documents for the delivery activities, read back from the attachment store."""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ApplicationError

from radflow.domain.definitions import ErrorType
from radflow.domain.order import StepRequest
from radflow.infra.attachments import AttachmentMissing, AttachmentStore


async def read_documents(store: AttachmentStore | None, req: StepRequest) -> dict[str, bytes]:
    """The report's documents from the attachment store, by SHA-256 (a missing one is retried:
    the store may be a shared volume that has not caught up)."""
    report = req.state.report
    wanted = [a.sha256 for a in (report.attachments if report else []) if a.sha256]
    if not wanted:
        return {}
    if store is None:
        raise ApplicationError("report has documents but no attachment store is configured", type=ErrorType.DELIVERY_FAILED)
    try:
        return {sha: await asyncio.to_thread(store.get, sha) for sha in wanted}
    except AttachmentMissing as err:
        raise ApplicationError(str(err), type=ErrorType.DELIVERY_FAILED) from err
