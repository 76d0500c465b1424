"""Order -> Modality Worklist item (IHE RAD TF-2 Appendix B, HL7 order -> MWL mapping).

The item is a plain dict of DICOM keyword -> value (str, or a list of such dicts for a
sequence), so it can be stored as JSON in the read model, matched without building a
pydicom Dataset, and only turned into a Dataset for the keys a C-FIND asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.charset import charset_for
from radflow.domain.dicom.uids import order_study_uid
from radflow.domain.dicom.vr_limits import fit_item
from radflow.domain.order import OrderData, OrderState
from radflow.domain.transitions import effective_status

Item = dict[str, Any]

SPS = "ScheduledProcedureStepSequence"

# HL7 TQ priority (ORC-7.6 / OBR-27.6 / TQ1-9) -> DICOM Requested Procedure Priority (0040,1003).
PRIORITY = {"S": "STAT", "A": "HIGH", "P": "HIGH", "T": "HIGH", "C": "MEDIUM", "R": "ROUTINE"}

# SPS status (0040,0020) by order status; statuses not listed are not on the worklist.
SPS_STATUS = {OrderStatus.SCHEDULED: "SCHEDULED", OrderStatus.IN_PROGRESS: "STARTED"}

LOCAL_CODING_SCHEME = "L"  # HL7's "local" designator, used when the order named no coding system


@dataclass(frozen=True)
class WorklistEntry:
    """One order's row in the worklist read model."""

    accession: str
    item: Item
    sps_status: str  # "" = not on the worklist (cancelled, not scheduled, acquired...)
    version: str  # the order's updated_at (ISO); older snapshots never overwrite newer ones
    cut_keywords: tuple[str, ...] = ()  # values shortened to their VR's maximum length (keywords only: no PHI)

    @property
    def visible(self) -> bool:
        return bool(self.sps_status)

    def sps(self) -> Item:
        return self.item[SPS][0]


def sps_status_for(state: OrderState) -> str:
    status = effective_status(state)
    if not state.order.schedule.is_scheduled():
        return ""
    return SPS_STATUS.get(status, "")


def entry_from_state(state: OrderState, tz: tzinfo | None = None) -> WorklistEntry:
    sps_status = sps_status_for(state)
    cut: list[str] = []
    item = worklist_item(state.order, sps_status or "SCHEDULED", tz, cut)
    return WorklistEntry(state.order.accession, item, sps_status, version_of(state.updated_at), tuple(cut))


def version_of(updated_at: datetime) -> str:
    """Fixed-width UTC text, so versions compare correctly as strings in SQLite."""
    if updated_at.tzinfo is not None:
        updated_at = updated_at.astimezone(UTC)
    return updated_at.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _date_time(start: datetime | None, tz: tzinfo | None) -> tuple[str, str]:
    # DICOM DA/TM carry no offset: the modality reads them as the site's local time.
    if start is None:
        return "", ""
    if tz is not None and start.tzinfo is not None:
        start = start.astimezone(tz)
    return start.strftime("%Y%m%d"), start.strftime("%H%M%S")


def _code(value: str, scheme: str, meaning: str) -> list[Item]:
    if not value:
        return []
    return [{"CodeValue": value, "CodingSchemeDesignator": scheme or LOCAL_CODING_SCHEME, "CodeMeaning": meaning}]


def worklist_item(order: OrderData, sps_status: str = "SCHEDULED", tz: tzinfo | None = None,
                  cut_keywords: list[str] | None = None) -> Item:
    """Every return key radflow offers; a C-FIND gets only the ones it asked for.

    Values longer than their VR allows are shortened (`domain.dicom.vr_limits`); the
    keywords cut are appended to `cut_keywords`.
    """
    sched = order.schedule
    proc = order.procedure
    date, time = _date_time(sched.start, tz)
    requested_id = sched.requested_procedure_id or order.accession
    code = _code(proc.code, proc.coding_system, proc.text or proc.code)
    protocol = sched.protocol
    # IPC-6 names the protocol of the step; without it the requested procedure's code stands in.
    protocol_code = _code(protocol.code, protocol.coding_system, protocol.text or protocol.code) or code
    sps: Item = {
        "ScheduledStationAETitle": sched.station_ae,
        "ScheduledStationName": sched.station_name,
        "ScheduledProcedureStepLocation": sched.location,
        "ScheduledProcedureStepStartDate": date,
        "ScheduledProcedureStepStartTime": time,
        "Modality": sched.modality,
        "ScheduledPerformingPhysicianName": "",
        "ScheduledProcedureStepDescription": proc.text,
        "ScheduledProtocolCodeSequence": protocol_code,
        "ScheduledProcedureStepID": sched.sps_id or order.accession,
        "ScheduledProcedureStepStatus": sps_status,
    }
    patient = order.patient
    item: Item = {
        "PatientName": patient.name.dicom(),
        "PatientID": patient.mrn,
        "IssuerOfPatientID": patient.issuer,
        "PatientBirthDate": patient.birth_date,
        "PatientSex": patient.sex,
        "AdmissionID": order.visit.visit_number,
        "CurrentPatientLocation": order.visit.location,
        "AccessionNumber": order.accession,
        "StudyInstanceUID": order_study_uid(order.accession, order.study_instance_uid),
        "RequestedProcedureID": requested_id,
        "RequestedProcedureDescription": proc.text,
        "RequestedProcedureCodeSequence": code,
        "RequestedProcedurePriority": PRIORITY.get(order.priority.upper()[:1], "") if order.priority else "",
        "ReasonForTheRequestedProcedure": order.reason,
        "ReferringPhysicianName": order.referring_physician.dicom(),
        "RequestingPhysician": order.ordering_provider.name.dicom(),
        "PlacerOrderNumberImagingServiceRequest": order.placer_number,
        "FillerOrderNumberImagingServiceRequest": order.filler_number or order.accession,
        "ReferencedStudySequence": [],
        "ReferencedPatientSequence": [],
        SPS: [sps],
    }
    item = fit_item(item, cut_keywords if cut_keywords is not None else [])
    charset = charset_for(_texts(item))
    if charset:
        item["SpecificCharacterSet"] = charset
    return item


def _texts(item: Item) -> list[str]:
    out: list[str] = []
    for value in item.values():
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for sub in value:
                out += _texts(sub)
    return out
