"""Business identifiers: how each mapped resource is found again (conditional create/update).

One order maps to at most one resource of each type, so every key derives from a value
that never changes for the order (accession, MRN, visit number, Study Instance UID).
"""

from __future__ import annotations

from radflow.domain.fhir.common import identifier
from radflow.domain.fhir.config import DICOM_UID_SYSTEM, FhirMappingConfig, study_uid_value
from radflow.domain.order import OrderState


def patient_key(state: OrderState, cfg: FhirMappingConfig) -> dict:
    p = state.order.patient
    ident = identifier(cfg.mrn_system(p.issuer), p.mrn, "MR")
    if p.issuer:
        ident["assigner"] = {"display": p.issuer}
    return ident


def encounter_key(state: OrderState, cfg: FhirMappingConfig) -> dict | None:
    visit = state.order.visit.visit_number
    return identifier(cfg.visit_system, visit, "VN") if visit else None


def accession_key(state: OrderState, cfg: FhirMappingConfig) -> dict:
    return identifier(cfg.accession_system, state.order.accession, "ACSN")


def task_key(state: OrderState, cfg: FhirMappingConfig) -> dict:
    # radflow schedules one procedure step per order: the accession names it (an SPS ID
    # may be assigned later, so it cannot be the key).
    return identifier(cfg.task_system, state.order.accession)


def study_uid(state: OrderState) -> str:
    return state.study.study_instance_uid or state.order.study_instance_uid


def study_key(state: OrderState) -> dict | None:
    uid = study_uid(state)
    return identifier(DICOM_UID_SYSTEM, study_uid_value(uid)) if uid else None


def study_uids(state: OrderState) -> list[str]:
    """Every study of the order, the primary first (one ImagingStudy each)."""
    uids = [study_uid(state)] if study_uid(state) else []
    return uids + [s.study_instance_uid for s in state.extra_studies if s.study_instance_uid not in uids]


def study_keys(state: OrderState) -> list[tuple[str, dict]]:
    return [(uid, identifier(DICOM_UID_SYSTEM, study_uid_value(uid))) for uid in study_uids(state)]


def study_ref_name(uid: str) -> str:
    """Where a delivery keeps the server reference of one study's ImagingStudy (refs are by type)."""
    return f"ImagingStudy|{uid}"


def report_key(state: OrderState, cfg: FhirMappingConfig) -> dict:
    # One DiagnosticReport per order, versioned P -> F -> C: keyed by the accession.
    return identifier(cfg.report_system, state.order.accession)


def endpoint_key(cfg: FhirMappingConfig) -> dict:
    return identifier(cfg.endpoint_system, cfg.endpoint_name)


def business_identifier(resource: dict) -> tuple[str, str]:
    """(system, value) to search/conditionally create `resource` by; the mappings put it first.

    For a ServiceRequest the accession (type ACSN) is the key even if a sender listed
    other identifiers first.
    """
    idents = resource.get("identifier") or []
    if resource.get("resourceType") == "ServiceRequest":
        for ident in idents:
            codes = {c.get("code") for c in (ident.get("type") or {}).get("coding", [])}
            if "ACSN" in codes:
                return ident["system"], ident["value"]
    if not idents or not idents[0].get("system") or not idents[0].get("value"):
        raise ValueError(f"{resource.get('resourceType', 'resource')} has no business identifier")
    return idents[0]["system"], idents[0]["value"]


def search_token(resource: dict) -> str:
    """`system|value` for If-None-Exist / identifier= searches."""
    system, value = business_identifier(resource)
    return f"{system}|{value}"
