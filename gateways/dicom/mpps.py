"""MPPS SCP (IHE RAD-6/7): N-CREATE IN PROGRESS, N-SET COMPLETED / DISCONTINUED.

Each step becomes an `OrderEvent` for the order(s) it performs, sent through
`OrderService` from the association thread via the loop bridge. Success is answered
only after Temporal accepted the event; then the instance is stored so a later N-SET
(even after a restart) is validated. The event goes first: a crash between the two
makes the modality resend, and the resend is deduplicated by its control id.

A step that matches no order (unscheduled acquisition) is stored and recorded as an
unmatched "mpps" exception for an operator, and answered success: it is not lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.events import Event

from radflow.domain.definitions import ErrorType, EventSource, OrderStatus
from radflow.domain.dicom.mpps import (
    COMPLETED,
    DISCONTINUED,
    FINAL_STATUSES,
    InvalidMpps,
    PerformedStep,
    merge,
    parse_step,
    validate_create,
    validate_set,
)
from radflow.domain.order import EventKind, OrderEvent
from radflow.domain.transitions import effective_status
from radflow.gateways.dicom.bridge import LoopBridge
from radflow.gateways.dicom.read_models import MppsReadModel, WorklistReadModel
from radflow.service.ordering import EventRejected, OrderError, OrderNotFound, OrderService, TemporalUnavailable

log = logging.getLogger("radflow.dicom.mpps")

SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
ATTRIBUTE_LIST_ERROR = 0x0107
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
# PS3.4 F.7.2.2: N-SET of a step already COMPLETED/DISCONTINUED is a processing failure
# carrying this Error ID.
NO_LONGER_UPDATABLE_ERROR_ID = 0xA710
NO_LONGER_UPDATABLE = "Performed Procedure Step Object may no longer be updated"

_LATE_OK = (EventKind.PROCEDURE_STARTED, EventKind.PROCEDURE_COMPLETED)
_PAST_ACQUISITION = (OrderStatus.ACQUIRED, OrderStatus.REPORTED, OrderStatus.DELIVERED)

RecordUnmatched = Callable[[str, dict[str, Any]], Awaitable[Any]]  # (key, details)
Reply = tuple[int | Dataset, Dataset | None]


def status(code: int, comment: str = "", error_id: int | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    if error_id is not None:
        ds.ErrorID = error_id
    return ds


class MppsService:
    def __init__(self, service: OrderService, store: MppsReadModel, worklist: WorklistReadModel, bridge: LoopBridge,
                 record_unmatched: RecordUnmatched) -> None:
        self.service = service
        self.store = store
        self.worklist = worklist
        self.bridge = bridge
        self.record_unmatched = record_unmatched

    # ------------------------------------------------------------- N-CREATE
    def on_n_create(self, event: Event) -> Reply:
        req = event.request
        uid = str(req.AffectedSOPInstanceUID or generate_uid())
        calling = event.assoc.requestor.ae_title
        try:
            attrs = event.attribute_list
            step = validate_create(attrs)
        except InvalidMpps as err:
            log.warning("MPPS N-CREATE refused: %s", err, extra={"mpps_uid": uid, "calling_ae": calling})
            return status(INVALID_ATTRIBUTE_VALUE, str(err)), None
        except Exception as err:
            log.warning("MPPS N-CREATE attribute list unreadable: %s", err, extra={"mpps_uid": uid})
            return status(ATTRIBUTE_LIST_ERROR, "attribute list cannot be decoded"), None
        existing = self.store.get(uid)
        if existing is not None:
            return status(DUPLICATE_SOP_INSTANCE, "MPPS instance already exists"), None

        accessions = self._candidates(step)
        event_ = OrderEvent(kind=EventKind.PROCEDURE_STARTED, source=EventSource.DICOM, control_id=f"mpps:{uid}:create",
                            at=datetime.now(UTC), reason=f"MPPS IN PROGRESS from {calling}")
        try:
            matched = self._send(accessions, event_)
            if not matched:
                self.bridge.run(self.record_unmatched(uid, _details(uid, step, attrs, calling)))
        except OrderError as err:
            return self._failure(err, uid, "N-CREATE")
        except Exception:
            log.exception("MPPS N-CREATE failed", extra={"mpps_uid": uid})
            return status(PROCESSING_FAILURE, "processing failure"), None

        self.store.create(uid, attrs, matched, calling)
        log.info("MPPS started" if matched else "MPPS unscheduled: recorded as exception",
                 extra={"mpps_uid": uid, "accessions": ",".join(matched), "calling_ae": calling})
        reply = Dataset()
        reply.update(attrs)
        if req.AffectedSOPInstanceUID is None:
            reply.AffectedSOPInstanceUID = uid  # pynetdicom moves it to the response command
        return SUCCESS, reply

    # ------------------------------------------------------------- N-SET
    def on_n_set(self, event: Event) -> Reply:
        uid = str(event.request.RequestedSOPInstanceUID or "")
        record = self.store.get(uid) if uid else None
        if record is None:
            return status(NO_SUCH_SOP_INSTANCE, "unknown MPPS instance"), None
        try:
            mods = event.modification_list
            new_status = validate_set(mods)
        except InvalidMpps as err:
            return status(INVALID_ATTRIBUTE_VALUE, str(err)), None
        except Exception:
            return status(ATTRIBUTE_LIST_ERROR, "modification list cannot be decoded"), None
        if record.status in FINAL_STATUSES:
            log.warning("MPPS N-SET on a %s step refused", record.status, extra={"mpps_uid": uid})
            return status(PROCESSING_FAILURE, NO_LONGER_UPDATABLE, NO_LONGER_UPDATABLE_ERROR_ID), None

        merged = merge(record.attributes, mods)
        step = parse_step(merged)
        order_event = self._event_for(new_status, uid, step)
        try:
            if order_event is not None:
                if record.matched:
                    self._send(record.accessions, order_event, must_exist=True)
                else:
                    self.bridge.run(self.record_unmatched(uid, _details(uid, step, merged, record.calling_ae)))
        except OrderError as err:
            return self._failure(err, uid, "N-SET")
        except Exception:
            log.exception("MPPS N-SET failed", extra={"mpps_uid": uid})
            return status(PROCESSING_FAILURE, "processing failure"), None

        if not self.store.update(uid, merged, record.status):
            return status(PROCESSING_FAILURE, "MPPS instance changed concurrently; retry"), None
        log.info("MPPS %s", new_status or "updated", extra={"mpps_uid": uid, "accessions": ",".join(record.accessions)})
        return SUCCESS, mods

    # ------------------------------------------------------------- helpers
    def _candidates(self, step: PerformedStep) -> list[str]:
        """Orders named by the Scheduled Step Attributes: accession, else the worklist keys."""
        out: list[str] = []
        for ref in step.refs:
            acc = ref.accession or self.worklist.lookup_accession(
                requested_procedure_id=ref.requested_procedure_id, study_uid=ref.study_uid, sps_id=ref.sps_id
            )
            if acc and acc not in out:
                out.append(acc)
        return out

    def _send(self, accessions: list[str], event: OrderEvent, must_exist: bool = False) -> list[str]:
        """Send to each order; returns the orders that exist (unknown ones are unmatched)."""
        matched: list[str] = []
        for acc in accessions:
            try:
                self.bridge.run(self.service.send_event(acc, event))
            except OrderNotFound:
                if must_exist:
                    raise
                log.warning("MPPS names an unknown accession", extra={"accession": acc})
                continue
            except EventRejected as err:
                if not self._late_report(acc, event, err):
                    raise
            matched.append(acc)
        return matched

    def _late_report(self, accession: str, event: OrderEvent, err: EventRejected) -> bool:
        """A start/completion that arrives after the images already made the order ACQUIRED.

        Common when the quiet period ends before the modality sends N-SET COMPLETED. The
        order has moved on and recorded the late report in its timeline (as an exception),
        so the step is accepted: a failure would only make the modality retry forever.
        """
        if err.error_type != ErrorType.INVALID_TRANSITION or event.kind not in _LATE_OK:
            return False
        status = effective_status(self.bridge.run(self.service.get_state(accession)))
        if status not in _PAST_ACQUISITION:
            return False
        log.info("MPPS after acquisition accepted", extra={"accession": accession, "kind": event.kind.value,
                                                            "status": status.value})
        return True

    @staticmethod
    def _event_for(new_status: str, uid: str, step: PerformedStep) -> OrderEvent | None:
        now = datetime.now(UTC)
        if new_status == COMPLETED:
            return OrderEvent(kind=EventKind.PROCEDURE_COMPLETED, source=EventSource.DICOM, control_id=f"mpps:{uid}:completed",
                              at=now, study=step.study_info())
        if new_status == DISCONTINUED:
            return OrderEvent(kind=EventKind.PROCEDURE_DISCONTINUED, source=EventSource.DICOM,
                              control_id=f"mpps:{uid}:discontinued", at=now,
                              reason=step.discontinuation_reason or "discontinued at the modality")
        return None

    @staticmethod
    def _failure(err: OrderError, uid: str, op: str) -> Reply:
        if isinstance(err, TemporalUnavailable):
            log.error("MPPS %s not accepted: Temporal unavailable", op, extra={"mpps_uid": uid})
            return status(PROCESSING_FAILURE, "order service unavailable, retry later"), None
        if isinstance(err, EventRejected):
            log.warning("MPPS %s refused by the order: %s", op, err, extra={"mpps_uid": uid})
            return status(PROCESSING_FAILURE, f"refused: {err}"), None
        log.warning("MPPS %s failed: %s", op, err, extra={"mpps_uid": uid})
        return status(PROCESSING_FAILURE, str(err)), None


def _details(uid: str, step: PerformedStep, attrs: Dataset, calling_ae: str) -> dict[str, Any]:
    """What an operator needs to reconcile an unscheduled step (kept in Temporal, not logged)."""
    ref = step.refs[0] if step.refs else None
    return {
        "mpps_uid": uid,
        "status": step.status,
        "calling_ae": calling_ae,
        "station_ae": step.station_ae,
        "modality": step.modality,
        "accession": ref.accession if ref else "",
        "requested_procedure_id": ref.requested_procedure_id if ref else "",
        "study_instance_uid": step.study_uid,
        "patient_id": str(attrs.get("PatientID", "") or ""),
        "patient_name": str(attrs.get("PatientName", "") or ""),
        "started": f"{attrs.get('PerformedProcedureStepStartDate', '')}{attrs.get('PerformedProcedureStepStartTime', '')}",
        "series": len(step.series),
        "referenced_instances": step.referenced_instances,
        "discontinuation_reason": step.discontinuation_reason,
    }
