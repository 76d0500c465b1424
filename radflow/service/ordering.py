"""The gateways' and API's door into Temporal: start orders, deliver events, find orders.

Every call returns only after Temporal durably accepted it (start persisted, update
completed), so the caller may acknowledge. Failures come back as the typed exceptions
below, which each edge maps to its own protocol (HL7 AE/AR, DICOM status, HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from radflow.domain import definitions as d
from radflow.domain.closed_orders import is_resend
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.ui_metadata import static_details, static_summary
from radflow.domain.order_view import OrderView, initial_view
from radflow.domain.order_index import (
    invalid_key,
    patient_index_key,
    placer_index_key,
    study_index_key,
)
from radflow.domain.order import (
    AllocateRequest,
    AllocatorState,
    EventResult,
    OperatorAction,
    OperatorResult,
    OrderData,
    OrderEvent,
    OrderPolicy,
    OrderState,
    Patient,
    StartOrder,
    TimelineEntry,
)

from radflow.service import order_metrics
from radflow.infra.order_index_store import OrderIndexStore, SqliteOrderIndex
from radflow.service.index_writes import IndexWriter
from radflow.service.legacy_index import LegacyIndex
from radflow.service.order_errors import (
    EventRejected,
    IndexUnavailable,
    OrderClosed,
    OrderError,
    OrderNotFound,
    TemporalUnavailable,
)
from radflow.service.patient_search import MrnHasher

log = logging.getLogger("radflow.ordering")
_ADD, _FORGET = "add", "forget"  # index_writer ops (adds and forgets keep their order)
T = TypeVar("T")


@dataclass
class TimelinePage:
    entries: list[TimelineEntry]  # oldest first
    total: int  # entries the order ever recorded
    next_before: int | None  # pass as `before` for the previous page; None = this is the first
    next_run: str = ""  # pass as `run` with it: the run holding that page ("" = the current run)


@dataclass
class StartResult:
    accession: str
    created: bool  # False: the order already existed (a resend)
    status: OrderStatus
    closed: bool = False  # a resend of an order that is already closed (acknowledged, nothing changed)


_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.INTERNAL,
}


def _map_rpc(err: RPCError, accession: str = "") -> OrderError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return OrderNotFound(f"unknown order {accession}" if accession else "not found")
    if err.status in _UNAVAILABLE or _workflow_not_ready(err):
        return TemporalUnavailable(f"Temporal unavailable: {err.message}")
    return EventRejected(err.message, d.ErrorType.INVALID_EVENT)


def _workflow_not_ready(err: RPCError) -> bool:
    """The workflow's last tasks failed or timed out (e.g. its worker was killed mid-task): the server
    refuses updates and queries until a task completes. Transient, never a refusal of the event."""
    if err.status != RPCStatusCode.FAILED_PRECONDITION:
        return False
    details = getattr(err.grpc_status, "details", None) or []
    return any(x.type_url.endswith("WorkflowNotReadyFailure") for x in details) or "Workflow Task in failed state" in err.message


def order_search_attributes(order: OrderData, status: OrderStatus) -> TypedSearchAttributes:
    """Search attributes set at start, so visibility lists the order before its first task."""
    pairs: list[SearchAttributePair] = [
        SearchAttributePair(d.SA_ACCESSION, order.accession),
        SearchAttributePair(d.SA_PATIENT_ID, order.patient.mrn_token or order.patient.mrn),
        SearchAttributePair(d.SA_ORDER_STATUS, status.value),
        SearchAttributePair(d.SA_NEEDS_ATTENTION, False),
    ]
    optional = {
        d.SA_MODALITY: order.schedule.modality,
        d.SA_STATION: order.schedule.station_ae,
        d.SA_STUDY_UID: order.study_instance_uid,
        d.SA_PLACER: order.placer_number,
    }
    pairs += [SearchAttributePair(key, value) for key, value in optional.items() if value]
    if order.schedule.start:
        start = order.schedule.start
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        pairs.append(SearchAttributePair(d.SA_SCHEDULED_START, start))
    return TypedSearchAttributes(pairs)


class OrderService:
    def __init__(self, client: Client, *, task_queue: str = d.TASK_QUEUE, policy: OrderPolicy | None = None,
                 rpc_timeout_s: float = 10.0, accession_prefix: str = "RF", api_url: str = "",
                 mrn_hasher: MrnHasher | None = None, index_store: OrderIndexStore | None = None,
                 baseline: int = d.ORDER_BASELINE) -> None:
        self.client = client
        self.baseline = baseline  # StartOrder.baseline of the orders it starts (RADFLOW_ORDER_BASELINE)
        self.api_url = api_url  # links in the Temporal UI's static details ("" = none)
        self.mrn_hasher = mrn_hasher  # PatientID = HMAC of the MRN when set (radflow/service/patient_search.py)
        self.task_queue = task_queue
        self.policy = policy or OrderPolicy()
        self.rpc_timeout = timedelta(seconds=rpc_timeout_s)
        self.accession_prefix = accession_prefix
        # The order index (radflow/infra/order_index_store.py); wiring.order_service passes the configured
        # one. The default is process-local: for tests and tools whose lookups stay in this process.
        self.index_store = index_store if index_store is not None else SqliteOrderIndex(":memory:")
        # Concurrent writes share one transaction (one fsync / one round trip) per batch.
        self.index_writer = IndexWriter(self._index_batch)
        self.legacy_index = LegacyIndex(client, task_queue, self._guard, self.rpc_timeout)

    def handle(self, accession: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(d.order_workflow_id(accession))

    def _tokenised(self, patient: Patient) -> Patient:
        if self.mrn_hasher is None or not patient.mrn:
            return patient
        return patient.model_copy(update={"mrn_token": self.mrn_hasher.token(patient.mrn)})

    def patient_terms(self, mrn: str) -> list[str]:
        """The PatientID search attribute values that mean this MRN."""
        return self.mrn_hasher.search_terms(mrn) if self.mrn_hasher else [mrn]

    async def _guard(self, call: Awaitable[T], accession: str = "", update_error: str = d.ErrorType.INVALID_TRANSITION) -> T:
        """Run one Temporal call with a hard deadline and map every failure to an OrderError.

        The SDK retries refused connections on its own, beyond `rpc_timeout`; the outer
        deadline keeps a sender from waiting on a dead cluster. A call cut short may still
        have been applied: the caller answers negatively and the sender's resend is idempotent.
        """
        try:
            return await asyncio.wait_for(call, self.rpc_timeout.total_seconds() + 1.0)
        except WorkflowAlreadyStartedError as err:
            # REJECT_DUPLICATE: a closed workflow holds this id (the order finished); the key is taken for good.
            raise OrderClosed(f"order {accession} is closed") from err
        except WorkflowUpdateFailedError as err:
            raise _update_failure(err, update_error) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            # No worker completed the update in time (worker down or overloaded): not accepted.
            raise TemporalUnavailable(f"order {accession} did not answer in time") from err
        except RPCError as err:
            if err.status == RPCStatusCode.ALREADY_EXISTS:
                raise OrderClosed(f"order {accession} is closed") from err
            if err.status == RPCStatusCode.NOT_FOUND and "completed" in (err.message or "").lower():
                # An update to a finished workflow: the order exists and is closed (its state is still readable).
                raise OrderClosed(f"order {accession} is closed") from err
            raise _map_rpc(err, accession) from err
        except (asyncio.TimeoutError, OSError) as err:
            raise TemporalUnavailable(f"Temporal did not answer: {err or 'timeout'}") from err
        except RuntimeError as err:  # lazy client: "Failed client connect"
            raise TemporalUnavailable(str(err)) from err

    # ----------------------------------------------------------- writes
    async def start_order(self, order: OrderData, source: EventSource, control_id: str = "",
                          repairs: list[str] | None = None, placer_key: str = "") -> StartResult:
        """Create the order's workflow; a resend of the same order changes nothing.

        The order's patient, placer and study keys go into the order index (the read-model
        database, radflow/infra/order_index_store.py) while the workflow starts, and the call
        returns only when both are durable (row committed, start persisted): an acknowledged
        order is always found by its keys. Concurrent, not one after the other, so the
        sender waits for the slower of the two instead of both. When one of the two fails
        the call fails (the sender resends; both are idempotent): an index entry without
        its order is skipped by the lookups, an order whose index write failed and whose
        sender never resends is still found through visibility, as orders older than the
        index are. `placer_key` is "<placer number>^<placer application>" (default: the
        order's placer number^system).

        An accession is used once (REJECT_DUPLICATE): once its order closed, a resend of that
        same order is acknowledged without effect, and a different order reusing the
        accession is refused with OrderClosed (docs/workflow.md "Closed orders").
        """
        keys = [self._patient_key(order.patient.mrn)]
        placer = placer_key or _default_placer_key(order)
        if placer:
            keys.append(placer_index_key(placer))
        if order.study_instance_uid and not invalid_key(study_index_key(order.study_instance_uid)):
            keys.append(study_index_key(order.study_instance_uid))  # never a reason to refuse the order
        entries = {key: [order.accession] for key in keys}
        _check_keys(entries)  # a refusal before anything is written
        order = order.model_copy(update={"patient": self._tokenised(order.patient)})
        status = OrderStatus.SCHEDULED if order.schedule.is_scheduled() else OrderStatus.ORDERED
        start = StartOrder(order=order, source=source, control_id=control_id, policy=self.policy, repairs=repairs or [],
                           baseline=self.baseline)
        indexed, started = await asyncio.gather(self._index(_ADD, entries),
                                                self._counted_start(order, start, status, control_id, source),
                                                return_exceptions=True)
        for outcome in (started, indexed):  # the start's refusal (OrderClosed) says more than an index failure
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(started, StartResult)
        return started

    async def _counted_start(self, order: OrderData, start: StartOrder, status: OrderStatus, control_id: str,
                             source: EventSource) -> StartResult:
        with order_metrics.counting_start(source.value) as outcome:
            result = await self._start(order, start, status, control_id)
            outcome.append("created" if result.created else "existing")
        return result

    async def _start(self, order: OrderData, start: StartOrder, status: OrderStatus, control_id: str) -> StartResult:
        try:
            handle = await self._guard(
                self.client.start_workflow(
                    d.ORDER_WORKFLOW,
                    start,
                    id=d.order_workflow_id(order.accession),
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=order_search_attributes(order, status),
                    static_summary=static_summary(order),  # what the Temporal UI lists; no PHI
                    static_details=static_details(order, self.api_url),
                    memo={d.MEMO_ORDER_VIEW: self._initial_view(order, status)},  # reads until the worker runs
                    rpc_timeout=self.rpc_timeout,
                ),
                order.accession,
            )
        except OrderClosed:
            closed = await self.get_state(order.accession)
            if not is_resend(closed, order, control_id):
                raise OrderClosed(f"order {order.accession} is closed ({closed.status.value}); "
                                  "a new order needs a new accession") from None
            return StartResult(accession=order.accession, created=False, status=closed.status, closed=True)
        return StartResult(accession=order.accession, created=_was_started(handle), status=status)

    def _initial_view(self, order: OrderData, status: OrderStatus) -> OrderView:
        p = self.policy
        lanes = d.lane_names(p.sync_consumers, p.report_consumers, p.acquisition_consumers)
        return initial_view(order, status, datetime.now(UTC), lanes)

    async def send_event(self, accession: str, event: OrderEvent) -> EventResult:
        if event.order is not None and event.order.patient.mrn:
            # A changed order (XO, FHIR PUT) may name another patient: index it there too.
            await self._index(_ADD, {self._patient_key(event.order.patient.mrn): [accession]})
        if event.order is not None:
            event = event.model_copy(update={"order": event.order.model_copy(update={"patient": self._tokenised(event.order.patient)})})
        if event.patient is not None:
            event = event.model_copy(update={"patient": self._tokenised(event.patient)})
        key = event.message_key or event.control_id
        update_id = d.event_update_id(event.source.value, key) if key else None
        with order_metrics.counting_event(event.source.value, event.kind.value) as results:
            result = await self._guard(
                self.handle(accession).execute_update(
                    d.EVENT_UPDATE, event, id=update_id, result_type=EventResult, rpc_timeout=self.rpc_timeout
                ),
                accession,
            )
            results.append(result)
        return result

    async def operator_action(self, accession: str, action: OperatorAction, update_id: str | None = None) -> OperatorResult:
        # update_id (e.g. the API's Idempotency-Key) makes a retried request apply once.
        with order_metrics.counting_operator_action(action.action):
            return await self._guard(
                self.handle(accession).execute_update(
                    d.OPERATOR_UPDATE, action, id=update_id, result_type=OperatorResult, rpc_timeout=self.rpc_timeout
                ),
                accession,
                d.ErrorType.NO_ATTENTION_PENDING,
            )

    async def allocate_accession(self, placer_key: str) -> str:
        """Next accession from the durable sequence; the same placer key gets the same number.

        The index is asked first: the allocator remembers only its recent allocations,
        the index every order that is still open (a resend of an old order is found).
        """
        indexed = await self._index_lookup([placer_index_key(placer_key)])
        if indexed.get(placer_index_key(placer_key)):
            return indexed[placer_index_key(placer_key)][-1]
        op = WithStartWorkflowOperation(
            d.ALLOCATOR_WORKFLOW,
            AllocatorState(),
            id=d.allocator_workflow_id(self.task_queue),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary="accession number sequence",
        )
        try:
            return await self._guard(
                self.client.execute_update_with_start_workflow(
                    d.ALLOCATE_UPDATE,
                    AllocateRequest(placer_key=placer_key, prefix=self.accession_prefix),
                    start_workflow_operation=op,
                    result_type=str,
                    rpc_timeout=self.rpc_timeout,
                ),
                update_error=d.ErrorType.INVALID_EVENT,
            )
        finally:
            read_start_outcome(op)

    async def accession_for_placer(self, placer_number: str, placer_key: str) -> str | None:
        """Find the accession of an order known only by its placer number.

        The index answers for every order started since it exists; the allocator and then
        visibility (eventually consistent) only for orders created before it.
        """
        key = placer_index_key(placer_key)
        indexed = (await self._index_lookup([key])).get(key)
        if indexed:
            return indexed[-1]
        allocator = self.client.get_workflow_handle(d.allocator_workflow_id(self.task_queue))
        try:
            found = await self._guard(allocator.query(d.LOOKUP_QUERY, placer_key, result_type=str | None, rpc_timeout=self.rpc_timeout))
        except OrderNotFound:
            found = None
        if found:
            return found
        # Orders that arrived with an accession: visibility (eventually consistent).
        query = f"{d.SA_PLACER.name} = {d.quote_visibility(placer_number)}"
        found_ids = await self._guard(self._list_ids(query, limit=1))
        return found_ids[0] if found_ids else None

    async def accession_for_study(self, study_uid: str) -> str | None:
        """The order that announced this Study Instance UID; None when none or several do.

        The index answers for orders started since it exists (at once); visibility (eventually
        consistent) for older ones.
        """
        key = study_index_key(study_uid)
        indexed = set((await self._index_lookup([key])).get(key, []))
        if indexed:
            return indexed.pop() if len(indexed) == 1 else None
        query = f"{d.SA_STUDY_UID.name} = {d.quote_visibility(study_uid)}"
        found = await self._guard(self._list_ids(query, limit=2))
        return found[0] if len(found) == 1 else None

    # ----------------------------------------------------------- reads
    async def is_running(self, accession: str) -> bool:
        """False once the order's workflow ended (completed, cancelled, terminated, timed out)."""
        desc = await self._guard(self.handle(accession).describe(rpc_timeout=self.rpc_timeout), accession)
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def get_state(self, accession: str) -> OrderState:
        return await self._guard(
            self.handle(accession).query(d.STATE_QUERY, result_type=OrderState, rpc_timeout=self.rpc_timeout), accession
        )

    async def get_timeline(self, accession: str) -> list[TimelineEntry]:
        return await self._guard(
            self.handle(accession).query(d.TIMELINE_QUERY, result_type=list[TimelineEntry], rpc_timeout=self.rpc_timeout),
            accession,
        )

    async def timeline_page(self, accession: str, before: int | None = None, limit: int = 100,
                            run: str = "") -> TimelinePage:
        """The `limit` entries before position `before` (newest page when None), across continue-as-new runs.

        Each run answers the `timeline` query with its own entries (those it carried in
        included); older ones are in the run named by its state's `previous_run_id`. The page
        names the run its oldest entry came from (`next_run`): the next page starts there
        instead of walking back from the current run (each closed run answers by replay).
        Orders of ImagingOrder v1 have no positions: their current run's entries come back whole.
        """
        current = await self.get_state(accession)

        async def read(run_id: str) -> tuple[OrderState, list[TimelineEntry]]:
            if not run_id:
                return current, await self.get_timeline(accession)
            handle = self.client.get_workflow_handle(d.order_workflow_id(accession), run_id=run_id)
            state = await self._guard(handle.query(d.STATE_QUERY, result_type=OrderState, rpc_timeout=self.rpc_timeout),
                                      accession)
            timeline = await self._guard(handle.query(d.TIMELINE_QUERY, result_type=list[TimelineEntry],
                                                      rpc_timeout=self.rpc_timeout), accession)
            return state, timeline

        state, timeline = await read(run)
        entries = [e for e in timeline if before is None or e.seq < before]
        if any(e.seq == 0 for e in entries):
            return TimelinePage(entries=entries, total=len(entries), next_before=None)
        first_run = run
        run_id = state.previous_run_id
        while len(entries) < limit and run_id and (not entries or entries[0].seq > 1):
            older_state, older = await read(run_id)
            floor = entries[0].seq if entries else (before or older_state.timeline_total + 1)
            fresh = [e for e in older if e.seq < floor]
            if fresh:
                entries, first_run = fresh + entries, run_id
            run_id = older_state.previous_run_id
        page = entries[-limit:]
        first = page[0].seq if page else 0
        more = first > 1
        return TimelinePage(entries=page, total=current.timeline_total, next_before=first if more else None,
                            next_run=first_run if more else "")

    async def open_orders_of_patient(self, mrn: str) -> list[str]:
        """Accessions of the open orders (running, not cancelled/discontinued) of an MRN.

        Candidates come from the order index (strongly consistent) plus visibility, which
        still finds orders created before the index existed. Each candidate's status is
        then read from Temporal's own record of the workflow (describe, not visibility);
        indexed orders that have finished leave the index.
        """
        keys = self._patient_keys(mrn)
        # Always the legacy buckets too (when there are any): an upgraded install may hold an older
        # open order of this MRN there beside a newer one here, and fan-out must reach both.
        stored, legacy = await self._lookup_parts(keys, [patient_index_key(mrn)])
        old = legacy.get(patient_index_key(mrn), [])
        indexed = list(dict.fromkeys([*old, *(a for k in keys for a in stored.get(k, []))]))
        closed = ", ".join(d.quote_visibility(s.value) for s in d.CLOSED_STATUSES)
        query = (
            f"{d.SA_PATIENT_ID.name} IN ({', '.join(d.quote_visibility(t) for t in self.patient_terms(mrn))})"
            " AND ExecutionStatus = 'Running'"
            f" AND {d.SA_ORDER_STATUS.name} NOT IN ({closed})"
        )
        visible = await self._guard(self._list_ids(query))
        candidates = list(dict.fromkeys([*indexed, *visible]))
        states = await asyncio.gather(*(self._openness(a) for a in candidates))
        finished = [a for a, s in zip(candidates, states, strict=True) if s is None and a in indexed]
        if finished:
            with contextlib.suppress(OrderError):  # only tidying: the next lookup retries it
                await self._index(_FORGET, {k: finished for k in keys})
                if gone := [a for a in finished if a in old]:
                    await self.legacy_index.forget({patient_index_key(mrn): gone})
        return [a for a, s in zip(candidates, states, strict=True) if s]

    async def move_patient_orders(self, retired_mrn: str, surviving_mrn: str, accessions: list[str]) -> None:
        """After a merge reached these orders: index them under the surviving MRN, then drop the retired key.

        Add before forget: a crash in between leaves them under both keys (harmless: the
        lookups check each order), never under neither.
        """
        if not accessions or retired_mrn == surviving_mrn:
            return
        await self._index(_ADD, {self._patient_key(surviving_mrn): accessions})
        await self._index(_FORGET, {k: accessions for k in self._patient_keys(retired_mrn)})
        if await self.legacy_index.buckets():  # an upgraded install: the retired MRN may hold them there too
            await self.legacy_index.forget({patient_index_key(retired_mrn): accessions})

    async def _openness(self, accession: str) -> bool | None:
        """True: open; False: running but cancelled/discontinued; None: finished or unknown."""
        try:
            desc = await self._guard(self.handle(accession).describe(rpc_timeout=self.rpc_timeout), accession)
        except OrderNotFound:
            return None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        status = desc.typed_search_attributes.get(d.SA_ORDER_STATUS)
        return status not in {s.value for s in d.CLOSED_STATUSES}

    # ----------------------------------------------------------- order index
    def _patient_key(self, mrn: str) -> str:
        """The key an order's patient is indexed under: the PatientID token when the HMAC is
        configured, so the index holds no clear MRN where search attributes hold none."""
        return patient_index_key(self.mrn_hasher.token(mrn) if self.mrn_hasher else mrn)

    def _patient_keys(self, mrn: str) -> list[str]:
        """Every key this MRN's orders may be indexed under (clear ones from before the HMAC too)."""
        return [patient_index_key(t) for t in self.patient_terms(mrn)]

    async def _index(self, op: str, entries: dict[str, list[str]]) -> None:
        """Write entries to the index store; concurrent writes share one transaction."""
        _check_keys(entries)
        await self.index_writer.write(op, 0, entries)

    async def _index_batch(self, op: str, _bucket: int, entries: dict[str, list[str]]) -> None:
        await self._on_index_store(self.index_store.add if op == _ADD else self.index_store.forget, entries)

    async def _on_index_store(self, call: Callable[[Any], T], arg: Any) -> T:
        """One index-store call off the event loop (a commit waits for an fsync on SQLite, a round
        trip on PostgreSQL); a timeout or a database failure is IndexUnavailable: the sender retries."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, arg), self.rpc_timeout.total_seconds() + 1.0)
        except asyncio.TimeoutError as err:
            raise IndexUnavailable("the order index did not answer in time") from err
        except Exception as err:  # a locked SQLite file, an unreachable PostgreSQL
            log.warning("order index call failed", extra={"call": call.__name__, "error": _db_error(err)})
            raise IndexUnavailable(f"the order index is unavailable: {type(err).__name__}") from err

    async def _index_lookup(self, keys: list[str]) -> dict[str, list[str]]:
        """Accessions per key, oldest first; keys the store misses are asked of the legacy buckets."""
        stored, legacy = await self._lookup_parts(keys, None)
        return {k: legacy.get(k, []) + stored.get(k, []) for k in keys if legacy.get(k) or stored.get(k)}

    async def _lookup_parts(self, keys: list[str], legacy_keys: list[str] | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(store entries, legacy bucket entries); legacy_keys None = the keys the store missed."""
        stored = await self._on_index_store(self.index_store.lookup, keys)
        if legacy_keys is None:
            legacy_keys = [k for k in keys if not stored.get(k)]
        legacy = await self.legacy_index.lookup(legacy_keys) if legacy_keys else {}
        return stored, legacy

    async def _list_ids(self, query: str, limit: int | None = None) -> list[str]:
        out: list[str] = []
        async for wf in self.client.list_workflows(query, limit=limit, rpc_timeout=self.rpc_timeout):
            acc = d.accession_from_workflow_id(wf.id)
            if acc:
                out.append(acc)
        return out


def _db_error(err: Exception) -> str:
    """The kind of a database failure, never its message: a driver may quote the row (an MRN key)."""
    code = getattr(err, "sqlite_errorname", "") or getattr(err, "sqlstate", "") or ""
    return f"{type(err).__name__} {code}".strip()


def _check_keys(entries: dict[str, list[str]]) -> None:
    for key in entries:
        problem = invalid_key(key)
        if problem:
            raise EventRejected(problem, d.ErrorType.INVALID_EVENT)


def read_start_outcome(op: WithStartWorkflowOperation) -> None:
    """Read the start's outcome that the SDK left on the operation: a failed start (an RPC
    timeout under load) is already reported through the update's error, and unread it makes
    asyncio log "Future exception was never retrieved" at ERROR. The SDK exposes the future
    only through an awaitable, which would wait forever when the start never ran."""
    future = getattr(op, "_workflow_handle", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()


def _default_placer_key(order: OrderData) -> str:
    return f"{order.placer_number}^{order.placer_system}" if order.placer_number else ""


def _was_started(handle: WorkflowHandle) -> bool:
    # With USE_EXISTING the server answers started=false for an already running order.
    resp = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(resp, "started", True))


def _update_failure(err: WorkflowUpdateFailedError, default_type: str = d.ErrorType.INVALID_TRANSITION) -> OrderError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return EventRejected(cause.message, cause.type or default_type)
    message = str(cause) if cause is not None else str(err)
    return EventRejected(message, d.ErrorType.INVALID_EVENT)
