"""DiagnosticReport: one per order, versioned as the ORU reports arrive (P -> F -> C).

OBR-25 `C` becomes `corrected`, not `amended`: R4 defines corrected as "modified to
correct an error" and amended as any later change (e.g. added content). A radiology
correction report fixes the issued text, which is what HL7 v2 `C` (and the v2-to-FHIR
map) means; an addendum workflow would be the case for `amended`.
"""

from __future__ import annotations

import base64

from radflow.domain.definitions import ReportStatus
from radflow.domain.fhir.common import (
    LOINC,
    V2_0074,
    Refs,
    display_name,
    fhir_datetime,
    procedure_code,
    prune,
    reference,
)
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.fhir.keys import accession_key, encounter_key, patient_key, report_key, study_keys, study_ref_name
from radflow.domain.order import Attachment, OrderState

REPORT_STATUS = {
    ReportStatus.PRELIMINARY: "preliminary",
    ReportStatus.FINAL: "final",
    ReportStatus.CORRECTED: "corrected",
}

RADIOLOGY = {"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}
# When the order carries no procedure code (DiagnosticReport.code is mandatory).
IMAGING_REPORT_CODE = {"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]}


def diagnostic_report(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None,
                      documents: dict[str, bytes] | None = None) -> dict | None:
    """None until a report arrived.

    Each report document (OBX ED) is a presentedForm entry with its size and hash; its
    data is inline when `documents` (SHA-256 -> bytes, from the attachment store) has it,
    so the delivered report is complete and the read facade stays small.
    """
    report = state.report
    if report is None:
        return None
    status = REPORT_STATUS[report.status]
    title = state.order.procedure.text or "Imaging report"
    form = {
        "contentType": "text/plain; charset=utf-8",
        "language": cfg.report_language,
        "data": base64.b64encode(report.text.encode("utf-8")).decode("ascii"),
        "title": f"{title} ({status})",
    }
    forms = ([form] if report.text else []) + [_presented(a, documents or {}) for a in report.attachments]
    interpreter = display_name(report.interpreter)
    studies = study_keys(state)
    return prune(
        {
            "resourceType": "DiagnosticReport",
            "identifier": [report_key(state, cfg), accession_key(state, cfg)],
            "basedOn": [reference("ServiceRequest", refs, accession_key(state, cfg))],
            "status": status,
            "category": [RADIOLOGY],
            "code": procedure_code(state, cfg) or IMAGING_REPORT_CODE,
            "subject": reference("Patient", refs, patient_key(state, cfg)),
            "encounter": reference("Encounter", refs, encounter_key(state, cfg)),
            # Clinically relevant time = when the study was done; the report time is `issued`.
            "effectiveDateTime": fhir_datetime(state.started_at or state.acquired_at or report.observed_at),
            "issued": fhir_datetime(report.observed_at),
            "resultsInterpreter": [reference("Practitioner", None, None, interpreter)] if interpreter else None,
            "imagingStudy": [_study_reference(refs, uid, key, i == 0) for i, (uid, key) in enumerate(studies)] or None,
            "conclusion": report.text or None,
            "presentedForm": forms or None,
        }
    )


def _study_reference(refs: Refs | None, uid: str, key: dict, primary: bool) -> dict | None:
    refs = refs or {}
    resolved = refs.get(study_ref_name(uid)) or (refs.get("ImagingStudy") if primary else None)
    return reference("ImagingStudy", {"ImagingStudy": resolved} if resolved else None, key)


def _presented(a: Attachment, documents: dict[str, bytes]) -> dict:
    data = documents.get(a.sha256) if a.sha256 else None
    return prune(
        {
            "contentType": a.content_type,
            "data": base64.b64encode(data).decode("ascii") if data is not None else None,
            "url": a.url or None,
            "size": a.size if a.sha256 else None,
            "hash": a.sha1_b64 or None,  # R4: base64 SHA-1 of the data
            "title": a.title or None,
        }
    )
