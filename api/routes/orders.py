"""/orders: read one order (its read model, or exactly by query), list orders (visibility), act on one.

Every POST becomes one `OrderService` call; the response is sent only after Temporal
completed it. With an `Idempotency-Key` header a retried POST is applied once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BeforeValidator

from radflow.api import order_actions as actions
from radflow.api.audit import note_order
from radflow.api.deps import ActorDep, ControlIdDep, OriginDep, ServiceDep, SettingsDep
from radflow.api.responses import NOT_FOUND, REFUSED, TOO_LARGE, UNAVAILABLE
from radflow.api.text_checks import SafeText, safe
from radflow.api.schemas import (
    CancelRequest,
    EventResultPublic,
    OperatorRequest,
    OperatorResultPublic,
    OrderListPublic,
    OrderPublic,
    ReadPublic,
    ScheduleRequest,
    TimelineEntryPublic,
    TimelinePublic,
)
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.order import EventKind, OrderEvent, Schedule
from radflow.service.order_read import Consistency, read_order
from radflow.service.order_search import OrderFilter, search_orders

router = APIRouter(prefix="/orders", tags=["orders"])

def _iso_only(value: object) -> object:
    # pydantic reads a number as a Unix time; the documented format is ISO 8601 only.
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an ISO 8601 date-time, not a number")
    return value


Accession = Annotated[SafeText, safe(64, "the order's accession number", Path, min_length=1)]


@router.get(
    "",
    response_model=OrderListPublic,
    responses=UNAVAILABLE,
    summary="List orders (eventually consistent)",
    description=(
        "Built from Temporal visibility (the search attributes every order upserts), so a change "
        "shows up here shortly after it was applied, not necessarily at once. Read one order with "
        "GET /orders/{accession}?consistency=strong for its exact current state. Page with next_page_token."
    ),
)
async def list_orders(
    service: ServiceDep,
    patient: Annotated[SafeText | None, safe(64, "patient MRN")] = None,
    accession: Annotated[SafeText | None, safe(64, "accession number")] = None,
    status: Annotated[OrderStatus | None, Query(description="order status")] = None,
    modality: Annotated[SafeText | None, safe(16, "DICOM modality, e.g. CT")] = None,
    station: Annotated[SafeText | None, safe(16, "scheduled station AE title")] = None,
    scheduled_from: Annotated[datetime | None, Query(description="scheduled start >= (ISO 8601, UTC if no offset)"),
                              BeforeValidator(_iso_only)] = None,
    scheduled_to: Annotated[datetime | None, Query(description="scheduled start <="), BeforeValidator(_iso_only)] = None,
    needs_attention: Annotated[bool | None, Query(description="only orders with (true) / without (false) a lane waiting for an operator")] = None,
    page_size: Annotated[int, Query(ge=1, le=1000, description="orders per page")] = 50,
    next_page_token: Annotated[SafeText | None, safe(4096, "next_page_token of the page before")] = None,
) -> OrderListPublic:
    flt = OrderFilter(
        accession=accession, patient=patient, status=status, modality=modality, station=station,
        scheduled_from=scheduled_from, scheduled_to=scheduled_to, needs_attention=needs_attention,
    )
    page = await search_orders(service, flt, page_size=page_size, page_token=next_page_token)
    return OrderListPublic.from_page(page)


@router.get(
    "/{accession}",
    response_model=OrderPublic,
    responses={**NOT_FOUND, **UNAVAILABLE},
    summary="Read one order",
    description=(
        "By default from the order's read model, which its workflow keeps current with every change: the answer "
        "comes in milliseconds even while radflow's workers are busy with a burst or down, and `read` says how "
        "fresh it is (`as_of`; `pending` = events not processed yet, so the order may have moved on). A change "
        "this API (or a gateway) acknowledged is in the next read. `consistency=strong` asks the order's "
        "workflow itself: exact, but it waits for a worker (503 when none answers within the timeout)."
    ),
)
async def get_order(
    accession: Accession, service: ServiceDep, settings: SettingsDep, request: Request,
    consistency: Annotated[Consistency, Query(description=(
        "`eventual` (default): the read model, never waits for a worker; `strong`: the workflow's exact state"))]
    = Consistency.EVENTUAL,
) -> OrderPublic:
    read = await read_order(service, accession, consistency)
    note_order(request, read.state.order, settings.fhir_mapping())
    fresh = ReadPublic(consistency=read.consistency.value, as_of=read.as_of, history_length=read.history_length,
                       pending=read.pending)
    return OrderPublic.from_state(read.state).model_copy(update={"read": fresh})


@router.get("/{accession}/timeline", response_model=TimelinePublic, responses={**NOT_FOUND, **UNAVAILABLE})
async def get_timeline(accession: Accession, service: ServiceDep,
                       before: Annotated[int | None, Query(ge=1, description="page of entries before this position")] = None,
                       limit: Annotated[int | None, Query(ge=1, le=1000, description="page size")] = None,
                       run: Annotated[str, Query(max_length=64, pattern=r"^[0-9a-fA-F-]*$",
                                                 description="`next_run` of the page before")] = "") -> TimelinePublic:
    if before is None and limit is None:  # the current run's entries, as before paging existed
        entries = await service.get_timeline(accession)
        return TimelinePublic(accession=accession, entries=[TimelineEntryPublic.from_entry(e) for e in entries])
    page = await service.timeline_page(accession, before, limit or 100, run)
    return TimelinePublic(accession=accession, entries=[TimelineEntryPublic.from_entry(e) for e in page.entries],
                          total=page.total, next_before=page.next_before, next_run=page.next_run)


@router.post(
    "/{accession}/schedule",
    response_model=EventResultPublic,
    responses={**NOT_FOUND, **REFUSED, **TOO_LARGE, **UNAVAILABLE},
    summary="Schedule an order that arrived without a schedule (or reschedule before acquisition)",
)
async def schedule_order(accession: Accession, body: ScheduleRequest, service: ServiceDep, control_id: ControlIdDep,
                         actor: ActorDep) -> EventResultPublic:
    start = body.start if body.start.tzinfo else body.start.replace(tzinfo=UTC)
    schedule = Schedule(station_ae=body.station_ae, modality=body.modality, start=start,
                        station_name=body.station_name, location=body.location)
    event = OrderEvent(kind=EventKind.SCHEDULE, source=EventSource.API, control_id=control_id, schedule=schedule, actor=actor)
    return await actions.send_event(service, accession, event)


@router.post("/{accession}/cancel", response_model=EventResultPublic, responses={**NOT_FOUND, **REFUSED, **TOO_LARGE, **UNAVAILABLE})
async def cancel_order(
    accession: Accession, service: ServiceDep, control_id: ControlIdDep, actor: ActorDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> EventResultPublic:
    return await actions.cancel(service, accession, body.reason if body else "", control_id, actor)


@router.post(
    "/{accession}/retry",
    response_model=OperatorResultPublic,
    responses={**NOT_FOUND, **REFUSED, **TOO_LARGE, **UNAVAILABLE},
    summary="Operator: retry the lane(s) of an order waiting for an operator (body lane optional)",
)
async def retry_step(
    accession: Accession, service: ServiceDep, control_id: ControlIdDep, actor: ActorDep, origin: OriginDep,
    body: Annotated[OperatorRequest | None, Body()] = None,
) -> OperatorResultPublic:
    return await actions.operator(service, accession, "retry", body.note if body else "", body.lane if body else "",
                                  control_id, actor, origin)


@router.post(
    "/{accession}/skip",
    response_model=OperatorResultPublic,
    responses={**NOT_FOUND, **REFUSED, **TOO_LARGE, **UNAVAILABLE},
    summary="Operator: skip what the lane(s) of an order waiting for an operator owe now",
)
async def skip_step(
    accession: Accession, service: ServiceDep, control_id: ControlIdDep, actor: ActorDep, origin: OriginDep,
    body: Annotated[OperatorRequest | None, Body()] = None,
) -> OperatorResultPublic:
    return await actions.operator(service, accession, "skip", body.note if body else "", body.lane if body else "",
                                  control_id, actor, origin)
