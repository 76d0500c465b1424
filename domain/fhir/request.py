"""ServiceRequest (the order, ORC/OBR) and Task (its scheduled procedure step)."""

from __future__ import annotations

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.fhir.common import (
    DCM,
    SNOMED,
    Refs,
    clinical_status,
    display_name,
    fhir_datetime,
    identifier,
    procedure_code,
    prune,
    reference,
)
from radflow.domain.fhir.config import DICOM_UID_SYSTEM, FhirMappingConfig, study_uid_value
from radflow.domain.fhir.keys import accession_key, encounter_key, patient_key, study_uid, task_key
from radflow.domain.order import OrderState

S = OrderStatus

# HL7 priority (TQ1-9 / OBR-27.6, table 0485) -> request-priority. S/A/R are the v2-to-FHIR
# IG's map; it leaves "timing critical" (T, TS<n>, TM<n>...) unmapped, we call that urgent.
PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "T": "urgent"}

IMAGING_CATEGORY = {"coding": [{"system": SNOMED, "code": "363679005", "display": "Imaging"}]}

# Task.status mirrors the scheduled procedure step (MWL SPS status / MPPS).
TASK_STATUS = {
    S.ORDERED: "requested",
    S.SCHEDULED: "requested",
    S.IN_PROGRESS: "in-progress",
    S.ACQUIRED: "completed",
    S.REPORTED: "completed",
    S.DELIVERED: "completed",
    S.CANCELLED: "cancelled",
    # Discontinued (ORC DC / MPPS DISCONTINUED): the step ended without its images.
    S.DISCONTINUED: "failed",
    S.COMPLETED: "completed",
    S.EXPIRED: "cancelled",  # never performed
    S.UNREPORTED: "completed",  # the step was performed; the missing report is the ServiceRequest's story
}


def priority_code(hl7_priority: str) -> str | None:
    value = hl7_priority.strip().upper()
    if value in ("STAT", "ASAP", "ROUTINE", "URGENT"):
        return value.lower()
    return PRIORITY.get(value[:1]) if value else None


def service_request_status(state: OrderState) -> str:
    """active while the order runs; completed once a final (or corrected) report exists.

    radflow has no hold state, so `on-hold` is never produced; a placer's
    `entered-in-error` is handled as a cancellation on intake.
    """
    status = clinical_status(state)
    if status in (S.CANCELLED, S.DISCONTINUED, S.EXPIRED, S.UNREPORTED):
        return "revoked"
    if status in (S.DELIVERED, S.COMPLETED) or (state.report and state.report.status != ReportStatus.PRELIMINARY):
        return "completed"
    return "active"


def service_request(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None) -> dict:
    order = state.order
    idents = [accession_key(state, cfg)]
    if order.placer_number:
        idents.append(identifier(order.placer_system or cfg.placer_system, order.placer_number, "PLAC"))
    if order.filler_number:
        idents.append(identifier(cfg.filler_system, order.filler_number, "FILL"))
    uid = study_uid(state)
    if uid:
        idents.append(identifier(DICOM_UID_SYSTEM, study_uid_value(uid)))
    provider = order.ordering_provider
    requester = reference(
        "Practitioner",
        None,
        identifier(cfg.practitioner_system, provider.id) if provider.id else None,
        display_name(provider.name),
    )
    sched = order.schedule
    modality = sched.modality or state.study.modality
    return prune(
        {
            "resourceType": "ServiceRequest",
            "identifier": idents,
            "status": service_request_status(state),
            "intent": "order",
            "category": [IMAGING_CATEGORY],
            "priority": priority_code(order.priority),
            # Required whenever orderDetail is present (prr-1): say what is known.
            "code": procedure_code(state, cfg) or _unspecified_procedure(modality),
            # The modality the step is scheduled on (DICOM code), e.g. for a FHIR worklist.
            "orderDetail": [{"coding": [{"system": DCM, "code": modality}]}] if modality else None,
            "subject": reference("Patient", refs, patient_key(state, cfg)),
            "encounter": reference("Encounter", refs, encounter_key(state, cfg)),
            "occurrenceDateTime": fhir_datetime(sched.start),
            "authoredOn": fhir_datetime(order.requested_at),
            "requester": requester,
            "performer": [_station(state, cfg)] if sched.station_ae else None,
            "reasonCode": [{"text": order.reason}] if order.reason else None,
        }
    )


def _unspecified_procedure(modality: str) -> dict:
    """An order that arrived without any procedure (OBR-4, OBR-44, IPC-6 and text all empty)."""
    return {"text": f"{modality} imaging procedure (not specified by the placer)" if modality
            else "imaging procedure (not specified by the placer)"}


def task(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None) -> dict:
    order = state.order
    status = clinical_status(state)
    sr = reference("ServiceRequest", refs, accession_key(state, cfg))
    idents = [task_key(state, cfg)]
    if order.schedule.sps_id:
        idents.append(identifier(cfg.task_system + "/sps-id", order.schedule.sps_id))
    end = state.acquired_at if TASK_STATUS[status] == "completed" else None
    if status in (S.CANCELLED, S.DISCONTINUED, S.EXPIRED):
        end = state.closed_at
    # executionPeriod is what happened (procedure start .. end); the planned time is the
    # restriction (when fulfilment is sought), so a requested Task carries no execution.
    period = prune({"start": fhir_datetime(state.started_at), "end": fhir_datetime(end)})
    planned = {"period": {"start": fhir_datetime(order.schedule.start)}} if order.schedule.start else None
    return prune(
        {
            "resourceType": "Task",
            "identifier": idents,
            "basedOn": [sr],
            "status": TASK_STATUS[status],
            "businessStatus": {"text": status.value},
            "intent": "order",
            "priority": priority_code(order.priority),
            "code": procedure_code(state, cfg),
            "focus": sr,
            "for": reference("Patient", refs, patient_key(state, cfg)),
            "encounter": reference("Encounter", refs, encounter_key(state, cfg)),
            "executionPeriod": period or None,
            "restriction": planned,
            "authoredOn": fhir_datetime(state.created_at),
            "lastModified": fhir_datetime(state.updated_at),
            "owner": _station(state, cfg) if order.schedule.station_ae else None,
        }
    )


def _station(state: OrderState, cfg: FhirMappingConfig) -> dict:
    sched = state.order.schedule
    ref = reference("Device", None, identifier(cfg.station_system, sched.station_ae), sched.station_name or sched.station_ae)
    assert ref is not None
    return ref
