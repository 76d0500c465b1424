"""One order's operator actions, shared by the single-order routes and the bulk route, so a
bulk action is exactly N single actions: same validation in the workflow, same timeline
entry, same actor, same idempotency (the request's control id is the update id)."""

from __future__ import annotations

import logging

from radflow.api.schemas import EventResultPublic, OperatorResultPublic
from radflow.domain.definitions import EventSource
from radflow.domain.order import EventKind, OperatorAction, OrderEvent
from radflow.infra.logs import order_fields
from radflow.service.ordering import OrderService

log = logging.getLogger("radflow.api")


async def send_event(service: OrderService, accession: str, event: OrderEvent) -> EventResultPublic:
    result = await service.send_event(accession, event)
    # Applied: from here on nothing may turn the answer into a 5xx (the client would retry
    # something that already happened); a failing log line is reported, not raised.
    log_applied("api event applied", accession, kind=event.kind.value, changed=result.changed,
                status=result.status.value, control_id=event.control_id)
    return EventResultPublic(accession=result.accession or accession, status=result.status, changed=result.changed,
                             duplicate=result.duplicate, message=result.message)


async def cancel(service: OrderService, accession: str, reason: str, control_id: str, actor: str) -> EventResultPublic:
    event = OrderEvent(kind=EventKind.CANCEL, source=EventSource.API, control_id=control_id, reason=reason, actor=actor)
    return await send_event(service, accession, event)


async def operator(service: OrderService, accession: str, action: str, note: str, lane: str, control_id: str,
                   actor: str, origin: str = "api") -> OperatorResultPublic:
    result = await service.operator_action(accession, OperatorAction(action=action, note=note, lane=lane, actor=actor,
                                                                     via=origin),
                                           update_id=f"{EventSource.API.value}:{control_id}")
    log_applied("api operator action", accession, action=action, status=result.status.value)
    return OperatorResultPublic(accession=result.accession or accession, action=result.action, status=result.status,
                                needs_attention=result.needs_attention, lanes=result.lanes)


def log_applied(message: str, accession: str, **fields: object) -> None:
    try:
        log.info(message, extra=order_fields(accession, **fields))
    except Exception:
        log.exception("log line failed after an applied change", extra={"accession": accession})
