"""ImagingStudy (what the DICOM side knows of the study) and the DICOMweb Endpoint."""

from __future__ import annotations

from radflow.domain.definitions import OrderStatus
from radflow.domain.fhir.common import (
    DCM,
    ENDPOINT_CONNECTION_TYPE,
    Refs,
    clinical_status,
    display_name,
    fhir_datetime,
    procedure_code,
    prune,
    reference,
)
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.fhir.keys import accession_key, encounter_key, endpoint_key, patient_key, study_key, study_keys
from radflow.domain.order import OrderState, StudyInfo

S = OrderStatus


def endpoint(cfg: FhirMappingConfig, refs: Refs | None = None) -> dict:
    return {
        "resourceType": "Endpoint",
        "identifier": [endpoint_key(cfg)],
        "status": "active",
        "connectionType": {"system": ENDPOINT_CONNECTION_TYPE, "code": "dicom-wado-rs", "display": "DICOM WADO-RS"},
        "name": cfg.endpoint_name,
        # R4's payload-type code system only has any/none; the text says what is served.
        "payloadType": [{"text": "DICOM WADO-RS"}],
        "payloadMimeType": ["application/dicom"],
        "address": cfg.dicomweb_base_url,
    }


def imaging_study_status(state: OrderState, study: StudyInfo | None = None) -> str:
    """available once instances exist; registered for a study UID known before any image."""
    if (study or state.study).instance_count > 0:
        return "available"
    if clinical_status(state) in (S.CANCELLED, S.DISCONTINUED):
        return "cancelled"
    return "registered"


def _coding(modality: str) -> dict:
    return {"system": DCM, "code": modality}


def imaging_study(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None) -> dict | None:
    """The primary study's ImagingStudy; None until a Study Instance UID is known (order, MPPS or images)."""
    key = study_key(state)
    if key is None:
        return None
    return _imaging_study(state, state.study, key, cfg, refs)


def imaging_studies(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None) -> list[tuple[str, dict]]:
    """(Study Instance UID, ImagingStudy) for every study of the order, the primary first."""
    out = []
    for uid, key in study_keys(state):
        study = next((s for s in state.extra_studies if s.study_instance_uid == uid), None)
        out.append((uid, _imaging_study(state, study or state.study, key, cfg, refs)))
    return out


def _imaging_study(state: OrderState, study: StudyInfo, key: dict, cfg: FhirMappingConfig, refs: Refs | None) -> dict:
    fallback = study.modality or state.order.schedule.modality
    series = []
    for s in study.series:
        # R4 requires a series modality; OT (other) when neither series nor study has one.
        modality = s.modality or fallback or "OT"
        series.append(prune({"uid": s.series_instance_uid, "modality": _coding(modality), "numberOfInstances": s.instance_count}))
    modalities: list[str] = []
    for m in [study.modality] + [s["modality"]["code"] for s in series]:
        if m and m not in modalities:
            modalities.append(m)
    if not modalities and fallback:
        modalities.append(fallback)
    series_count = study.series_count or len(series)
    instance_count = study.instance_count or sum(s.instance_count for s in study.series)
    referrer = display_name(state.order.referring_physician)
    proc = procedure_code(state, cfg)
    return prune(
        {
            "resourceType": "ImagingStudy",
            "identifier": [key, accession_key(state, cfg)],
            "status": imaging_study_status(state, study),
            "modality": [_coding(m) for m in modalities],
            "subject": reference("Patient", refs, patient_key(state, cfg)),
            "encounter": reference("Encounter", refs, encounter_key(state, cfg)),
            "started": fhir_datetime(state.started_at or state.acquired_at),
            "basedOn": [reference("ServiceRequest", refs, accession_key(state, cfg))],
            "referrer": reference("Practitioner", None, None, referrer) if referrer else None,
            "endpoint": [reference("Endpoint", refs, endpoint_key(cfg))],
            "numberOfSeries": series_count if instance_count or series_count else None,
            "numberOfInstances": instance_count if instance_count or series_count else None,
            "procedureCode": [proc] if proc else None,
            "description": state.order.procedure.text or None,
            "series": series or None,
        }
    )
