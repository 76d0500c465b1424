"""Bulk operator actions: find orders by a filter, then act on each the way a single action does.

Matching is two-step. Temporal visibility (search attributes) narrows the candidates; it is
eventually consistent, and the SQLite visibility of the dev server has been seen to answer
an empty page for orders minutes old, so an empty first answer is asked once more. Each
candidate's exact state is then read (workflow query) and the whole filter is checked
against it, so an order whose search attributes lag is neither acted on wrongly nor
reported as matched. The caller always gets the list of what matched, dry run or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from radflow.domain import definitions as d
from radflow.domain.definitions import OrderStatus
from radflow.domain.order import OrderState
from radflow.service.order_search import InvalidFilter
from radflow.service.ordering import OrderError, OrderNotFound, OrderService

ACTIONS = ("retry", "skip", "cancel")
EMPTY_ANSWER_RECHECK_S = 0.5
T = TypeVar("T")


class TooManyOrders(InvalidFilter):
    """The filter matches more orders than one bulk request may touch."""


@dataclass
class BulkFilter:
    status: OrderStatus | None = None
    lane: str | None = None  # a lane waiting for an operator (worklist, fhir, hl7, archive)
    station: str | None = None
    modality: str | None = None
    procedure: str | None = None  # requested procedure code
    needs_attention: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in vars(self).values())

    def check(self) -> None:
        if self.is_empty():
            raise InvalidFilter("a bulk action needs at least one filter (it would touch every order)")
        for lo, hi, name in ((self.created_from, self.created_to, "created"), (self.updated_from, self.updated_to, "updated")):
            if lo and hi and _utc(lo) > _utc(hi):
                raise InvalidFilter(f"{name}_from is after {name}_to")

    def to_query(self, task_queue: str) -> str:
        """Visibility query of the candidates: what search attributes can say (a superset of the matches)."""
        self.check()
        q = d.quote_visibility
        parts = [d.order_workflow_types_clause(), f"TaskQueue = {q(task_queue)}", "ExecutionStatus = 'Running'"]
        parts += [f"{name} = {q(value)}" for name, value in (
            (d.SA_ORDER_STATUS.name, self.status.value if self.status else None),
            (d.SA_STATION.name, self.station),
            (d.SA_MODALITY.name, self.modality),
        ) if value]
        # AttentionLane and ProcedureCode exist since patch ui-search-attributes: an order that has not
        # upserted since (started before it, untouched) has neither, so it stays a candidate.
        lane, code = d.SA_ATTENTION_LANE.name, d.SA_PROCEDURE_CODE.name
        if self.lane:
            parts.append(f"({lane} = {q(self.lane)} OR ({d.SA_NEEDS_ATTENTION.name} = true AND {lane} IS NULL))")
        if self.needs_attention is not None:
            parts.append(f"{d.SA_NEEDS_ATTENTION.name} = {'true' if self.needs_attention else 'false'}")
        if self.procedure:
            parts.append(f"({code} = {q(self.procedure)} OR {code} IS NULL)")
        # No time clause: a run's StartTime is not the order's creation (the first task comes after
        # it; continue-as-new starts new runs later), so time ranges are checked on the exact state only.
        return " AND ".join(parts)

    def mismatch(self, state: OrderState) -> str:
        """Why the order's exact state does not match ("" = it matches)."""
        o = state.order
        if self.status and state.status != self.status:
            return f"status is {state.status.value}"
        if self.station and o.schedule.station_ae != self.station:
            return f"station is {o.schedule.station_ae or '-'}"
        if self.modality and o.schedule.modality != self.modality:
            return f"modality is {o.schedule.modality or '-'}"
        if self.procedure and o.procedure.code != self.procedure:
            return f"procedure is {o.procedure.code or '-'}"
        waiting = waiting_lanes(state)
        if self.lane and self.lane not in waiting:
            return f"lane {self.lane} is not waiting for an operator"
        if self.needs_attention is not None and bool(waiting) != self.needs_attention:
            return "needs attention" if waiting else "does not need attention"
        for value, lo, hi, name in ((state.created_at, self.created_from, self.created_to, "created"),
                                    (state.updated_at, self.updated_from, self.updated_to, "updated")):
            if (lo and _utc(value) < _utc(lo)) or (hi and _utc(value) > _utc(hi)):
                return f"{name} at {_utc(value).isoformat()}"
        return ""


def waiting_lanes(state: OrderState) -> set[str]:
    lanes = {name for name, lane in state.lanes.items() if lane.attention is not None}
    if state.attention is not None:  # orders started before lanes (v1): step "<consumer>:<milestone>"
        lanes.add(state.attention.step.split(":", 1)[0])
    return lanes


@dataclass
class Match:
    query: str
    candidates: int  # orders visibility listed
    matched: list[str] = field(default_factory=list)  # accessions whose exact state matches
    not_matching: dict[str, str] = field(default_factory=dict)  # candidate -> why its exact state does not match
    unreadable: dict[str, str] = field(default_factory=dict)  # candidate -> why its state could not be read
    visibility_asked: int = 1


async def match_orders(service: OrderService, flt: BulkFilter, *, limit: int, concurrency: int = 8) -> Match:
    """The orders matching `flt` now; TooManyOrders when visibility lists more than `limit`."""
    query = flt.to_query(service.task_queue)
    candidates = await _candidates(service, query, limit)
    asked = 1
    if not candidates:
        await asyncio.sleep(EMPTY_ANSWER_RECHECK_S)
        candidates, asked = await _candidates(service, query, limit), 2
    match = Match(query=query, candidates=len(candidates), visibility_asked=asked)
    states = await bounded(concurrency, [lambda a=a: _state(service, a) for a in candidates])
    for accession, state in zip(candidates, states, strict=True):
        if isinstance(state, str):
            match.unreadable[accession] = state
        elif state is not None:
            why = flt.mismatch(state)
            if why:
                match.not_matching[accession] = why
            else:
                match.matched.append(accession)
    return match


async def _candidates(service: OrderService, query: str, limit: int) -> list[str]:
    from temporalio.service import RPCError, RPCStatusCode

    from radflow.service.ordering import TemporalUnavailable

    out: list[str] = []
    try:
        async for wf in service.client.list_workflows(query, limit=limit + 1, rpc_timeout=service.rpc_timeout):
            accession = d.accession_from_workflow_id(wf.id)
            if accession and accession not in out:
                out.append(accession)
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise InvalidFilter(err.message) from err
        raise TemporalUnavailable(f"Temporal visibility unavailable: {err.message}") from err
    if len(out) > limit:
        raise TooManyOrders(f"the filter matches more than {limit} orders; narrow it (RADFLOW_BULK_MAX_ORDERS)")
    return sorted(out)


async def _state(service: OrderService, accession: str) -> OrderState | str | None:
    try:
        return await service.get_state(accession)
    except OrderNotFound:
        return None
    except OrderError as err:
        return str(err)[:200]


async def bounded(limit: int, calls: list[Callable[[], Awaitable[T]]],
                     done: Callable[[int, T], None] | None = None) -> list[T]:
    """Run the calls at most `limit` at a time, in order of the list; `done(i, result)` after each."""
    gate = asyncio.Semaphore(max(1, limit))

    async def one(i: int, call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            result = await call()
        if done is not None:
            done(i, result)
        return result

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(calls))))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
