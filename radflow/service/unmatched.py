"""Unmatched items (unsolicited studies, unscheduled MPPS): report, list, read, resolve.

Each item is one `UnmatchedItem` workflow (workflows/unmatched.py) with the id
`unmatched-{kind}-{key}`. Reporting is update-with-start, so the first report creates the
item and later ones refresh its details; once resolved the workflow is closed and a new
report of the same key returns the resolved item (with `linked_accession`) instead of
opening a second one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from radflow.domain import definitions as d
from radflow.domain.ui_metadata import unmatched_summary
from radflow.domain.unmatched import ResolveUnmatched, UnmatchedItem, UnmatchedNote, UnmatchedStart
from radflow.service.ordering import EventRejected, OrderNotFound, TemporalUnavailable, read_start_outcome

_LIST_CONCURRENCY = 16


class UnmatchedNotFound(OrderNotFound):
    pass


class UnmatchedConflict(EventRejected):
    pass


async def record_unmatched(client: Client, kind: str, key: str, details: dict[str, Any], *, reason: str = "",
                           task_queue: str = d.TASK_QUEUE, rpc_timeout_s: float = 10.0) -> UnmatchedItem:
    """Create or refresh the item; returns it as it now is (resolved items come back resolved)."""
    op = WithStartWorkflowOperation(
        d.UNMATCHED_WORKFLOW,
        UnmatchedStart(kind=kind, key=key),
        id=d.unmatched_workflow_id(kind, key),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A closed item is resolved: never start a second one under the same key.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=unmatched_summary(kind, key),
        # Not the reason: it may quote the images' PatientID (the item's `details` query has it).
        static_details=f"matches no order\n\nAPI: `GET /exceptions/{kind}/{key}`; link: "
                       f"`POST /orders/<accession>/link-study`; dismiss: `POST /exceptions/{kind}/{key}/dismiss`",
    )
    try:
        return await client.execute_update_with_start_workflow(
            d.UNMATCHED_NOTE_UPDATE,
            UnmatchedNote(details=details, reason=reason),
            start_workflow_operation=op,
            result_type=UnmatchedItem,
            rpc_timeout=timedelta(seconds=rpc_timeout_s),
        )
    except WorkflowAlreadyStartedError:
        pass  # closed meanwhile: read the resolved item below
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise TemporalUnavailable(f"Temporal did not confirm unmatched {kind} {key} in time") from err
    except WorkflowUpdateFailedError as err:
        # Resolved between our start check and the update: read the closed item below.
        if not _closed_meanwhile(err):
            raise EventRejected(str(err.cause or err), d.ErrorType.INVALID_EVENT) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise _map_rpc(err) from err
    finally:
        read_start_outcome(op)
    item = await get_unmatched(client, kind, key, rpc_timeout_s=rpc_timeout_s)
    if item is None:
        raise TemporalUnavailable(f"unmatched item {kind} {key} vanished while being recorded")
    return item


async def get_unmatched(client: Client, kind: str, key: str, *, rpc_timeout_s: float = 10.0) -> UnmatchedItem | None:
    handle = client.get_workflow_handle(d.unmatched_workflow_id(kind, key), result_type=UnmatchedItem)
    timeout = timedelta(seconds=rpc_timeout_s)
    try:
        desc = await handle.describe(rpc_timeout=timeout)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            return await handle.query(d.UNMATCHED_DETAILS_QUERY, result_type=UnmatchedItem, rpc_timeout=timeout)
        return await handle.result(rpc_timeout=timeout)
    except WorkflowFailureError as err:
        raise TemporalUnavailable(f"unmatched item {kind} {key} ended abnormally: {err}") from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise _map_rpc(err) from err


async def list_unmatched(client: Client, kind: str | None = None, *, task_queue: str = d.TASK_QUEUE,
                         rpc_timeout_s: float = 10.0) -> list[UnmatchedItem]:
    """Open (unresolved) items of this deployment (task queue), oldest first.

    Membership comes from Temporal visibility (eventually consistent: an item reported a
    moment ago may be missing for a short while); each item's content is read by query, exact.
    An item whose query fails is still listed, with its key and the reason in `reason`.
    """
    query = (f"WorkflowType = {d.quote_visibility(d.UNMATCHED_WORKFLOW)} AND ExecutionStatus = 'Running'"
             f" AND TaskQueue = {d.quote_visibility(task_queue)}")
    prefix = d.unmatched_workflow_id(kind, "") if kind else d.UNMATCHED_ID_PREFIX
    found: list[tuple[str, datetime]] = []
    try:
        async for wf in client.list_workflows(query):
            if wf.id.startswith(prefix):
                found.append((wf.id, wf.start_time))
    except RPCError as err:
        raise _map_rpc(err) from err
    gate = asyncio.Semaphore(_LIST_CONCURRENCY)
    timeout = timedelta(seconds=rpc_timeout_s)

    async def read(workflow_id: str, started: datetime) -> UnmatchedItem | None:
        async with gate:
            try:
                return await client.get_workflow_handle(workflow_id).query(
                    d.UNMATCHED_DETAILS_QUERY, result_type=UnmatchedItem, rpc_timeout=timeout
                )
            except RPCError as err:
                # Resolved (closed) since the listing: no longer open.
                if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    return None
                item_kind, _, item_key = workflow_id[len(d.UNMATCHED_ID_PREFIX):].partition("-")
                return UnmatchedItem(kind=item_kind, key=item_key, first_seen=started, last_seen=started,
                                     reason=f"details unavailable: {err.message}")

    items = await asyncio.gather(*(read(w, t) for w, t in found))
    return sorted((i for i in items if i is not None and not i.resolved), key=lambda i: i.first_seen)


async def resolve_unmatched(client: Client, kind: str, key: str, accession: str, note: str = "", *,
                            rpc_timeout_s: float = 10.0) -> UnmatchedItem:
    """Link the item to `accession` ("" = dismiss). Repeating the same resolution is a no-op."""
    handle = client.get_workflow_handle(d.unmatched_workflow_id(kind, key))
    try:
        return await handle.execute_update(
            d.UNMATCHED_RESOLVE_UPDATE,
            ResolveUnmatched(accession=accession, note=note),
            result_type=UnmatchedItem,
            rpc_timeout=timedelta(seconds=rpc_timeout_s),
        )
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise TemporalUnavailable(f"Temporal did not confirm resolving {kind} {key} in time") from err
    except WorkflowUpdateFailedError as err:
        if not _closed_meanwhile(err):
            raise UnmatchedConflict(str(getattr(err.cause, "message", None) or err.cause or err), d.ErrorType.INVALID_TRANSITION) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise _map_rpc(err) from err
    item = await get_unmatched(client, kind, key, rpc_timeout_s=rpc_timeout_s)
    if item is None:
        raise UnmatchedNotFound(f"no unmatched {kind} {key}")
    if item.linked_accession != accession:
        raise UnmatchedConflict(f"already resolved (linked to {item.linked_accession or 'nothing'})", d.ErrorType.INVALID_TRANSITION)
    return item


def _closed_meanwhile(err: WorkflowUpdateFailedError) -> bool:
    return "completed" in str(err.cause or err).lower()


def _map_rpc(err: RPCError) -> Exception:
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED,
                      RPCStatusCode.UNKNOWN, RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.INTERNAL):
        return TemporalUnavailable(f"Temporal unavailable: {err.message}")
    return EventRejected(err.message, d.ErrorType.INVALID_EVENT)
