"""Finding orders through Temporal visibility (the search attributes each order upserts).

Visibility is eventually consistent: a change applied to an order shows up in these
lists a moment later (milliseconds on the dev server, longer on a loaded cluster). Reads
of one order come from its read model or, on request, exactly (`order_read.py`); lists are for browsing and
work queues, not for decisions that must see the latest write.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from radflow.domain import definitions as d
from radflow.domain.definitions import OrderStatus
from radflow.service.ordering import OrderService, TemporalUnavailable
from radflow.service.patient_search import is_token


class InvalidFilter(ValueError):
    """A filter Temporal (or we) cannot turn into a visibility query."""


@dataclass
class OrderFilter:
    accession: str | None = None
    patient: str | None = None  # MRN (PatientID search attribute)
    status: OrderStatus | None = None
    modality: str | None = None
    station: str | None = None  # scheduled station AE title
    scheduled_from: datetime | None = None
    scheduled_to: datetime | None = None
    needs_attention: bool | None = None

    def check(self) -> None:
        if self.scheduled_from and self.scheduled_to and _utc(self.scheduled_from) > _utc(self.scheduled_to):
            raise InvalidFilter("scheduled_from is after scheduled_to")

    def to_query(self, task_queue: str, patient_terms: list[str] | None = None) -> str:
        """The visibility query; scoped to order workflows on this deployment's task queue.

        `patient_terms`: the PatientID values meaning `patient` (its HMAC token, and the MRN
        itself for orders from before the key; OrderService.patient_terms); default the MRN.
        """
        self.check()
        q = d.quote_visibility
        parts = [d.order_workflow_types_clause(), f"TaskQueue = {q(task_queue)}"]
        if self.patient:
            terms = patient_terms or [self.patient]
            parts.append(f"{d.SA_PATIENT_ID.name} IN ({', '.join(q(t) for t in terms)})")
        keyword_filters = [
            (d.SA_ACCESSION.name, self.accession),
            (d.SA_ORDER_STATUS.name, self.status.value if self.status else None),
            (d.SA_MODALITY.name, self.modality),
            (d.SA_STATION.name, self.station),
        ]
        parts += [f"{name} = {q(value)}" for name, value in keyword_filters if value]
        if self.scheduled_from:
            parts.append(f"{d.SA_SCHEDULED_START.name} >= {q(_rfc3339(self.scheduled_from))}")
        if self.scheduled_to:
            parts.append(f"{d.SA_SCHEDULED_START.name} <= {q(_rfc3339(self.scheduled_to))}")
        if self.needs_attention is not None:
            parts.append(f"{d.SA_NEEDS_ATTENTION.name} = {'true' if self.needs_attention else 'false'}")
        return " AND ".join(parts)


@dataclass
class OrderSummary:
    """One list row, from search attributes only (no per-order query)."""

    accession: str
    workflow_id: str
    status: str
    patient_id: str
    modality: str
    station_ae: str
    scheduled_start: datetime | None
    study_instance_uid: str
    needs_attention: bool
    overdue: list[str]
    started_at: datetime
    running: bool


@dataclass
class OrderPage:
    orders: list[OrderSummary] = field(default_factory=list)
    next_page_token: str | None = None  # opaque, pass back to get the next page


async def search_orders(
    service: OrderService, flt: OrderFilter, *, page_size: int = 50, page_token: str | None = None
) -> OrderPage:
    query = flt.to_query(service.task_queue, service.patient_terms(flt.patient) if flt.patient else None)
    token = decode_page_token(page_token) if page_token else None
    it = service.client.list_workflows(query, page_size=page_size, next_page_token=token, rpc_timeout=service.rpc_timeout)
    try:
        await it.fetch_next_page()
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise InvalidFilter(err.message) from err
        raise TemporalUnavailable(f"Temporal visibility unavailable: {err.message}") from err
    rows = [_summary(wf, flt.patient) for wf in it.current_page or []]
    next_token = encode_page_token(it.next_page_token) if it.next_page_token else None
    return OrderPage(orders=[r for r in rows if r is not None], next_page_token=next_token)


def encode_page_token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_page_token(token: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as err:
        raise InvalidFilter("next_page_token is not a token this API returned") from err


def _summary(wf: WorkflowExecution, searched_mrn: str | None = None) -> OrderSummary | None:
    accession = d.accession_from_workflow_id(wf.id)
    if accession is None:
        return None
    sa = wf.typed_search_attributes
    patient_id = sa.get(d.SA_PATIENT_ID) or ""
    if is_token(patient_id):
        # A keyed hash: the MRN is known only when the search asked for it (GET /orders/{accession} has it).
        patient_id = searched_mrn or ""
    return OrderSummary(
        accession=sa.get(d.SA_ACCESSION) or accession,
        workflow_id=wf.id,
        status=sa.get(d.SA_ORDER_STATUS) or "",
        patient_id=patient_id,
        modality=sa.get(d.SA_MODALITY) or "",
        station_ae=sa.get(d.SA_STATION) or "",
        scheduled_start=sa.get(d.SA_SCHEDULED_START),
        study_instance_uid=sa.get(d.SA_STUDY_UID) or "",
        needs_attention=bool(sa.get(d.SA_NEEDS_ATTENTION)),
        overdue=list(sa.get(d.SA_OVERDUE) or []),
        started_at=wf.start_time,
        running=wf.status == WorkflowExecutionStatus.RUNNING,
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _rfc3339(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
