"""Patient (PID) and Encounter (PV1) from the order's patient and visit."""

from __future__ import annotations

from radflow.domain.fhir.common import V3_ACT_CODE, V3_NULL_FLAVOR, Refs, fhir_date, human_name, identifier, prune, reference
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.fhir.keys import encounter_key, patient_key
from radflow.domain.order import OrderState, PatientKey

# HL7 table 0001 (PID-8) -> FHIR AdministrativeGender.
GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}

# HL7 table 0004 (PV1-2) -> v3 ActCode encounter class.
PATIENT_CLASS = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "R": ("AMB", "ambulatory"),  # recurring patient: repeated outpatient visits
    "P": ("PRENC", "pre-admission"),
    "B": ("IMP", "inpatient encounter"),  # obstetrics
}


def patient(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None) -> dict:
    p = state.order.patient
    name = human_name(p.name)
    return prune(
        {
            "resourceType": "Patient",
            "identifier": [patient_key(state, cfg)],
            "name": [name] if name else None,
            "gender": GENDER.get(p.sex.strip().upper()[:1]) if p.sex.strip() else None,
            "birthDate": fhir_date(p.birth_date),
        }
    )


def encounter(state: OrderState, cfg: FhirMappingConfig, refs: Refs | None = None) -> dict | None:
    """The visit the order belongs to; None when the order names no visit number."""
    key = encounter_key(state, cfg)
    if key is None:
        return None
    visit = state.order.visit
    code, display = PATIENT_CLASS.get(visit.patient_class.strip().upper(), ("", ""))
    klass = (
        {"system": V3_ACT_CODE, "code": code, "display": display}
        if code
        else {"system": V3_NULL_FLAVOR, "code": "UNK", "display": "unknown"}
    )
    return prune(
        {
            "resourceType": "Encounter",
            "identifier": [key],
            # Orders say which visit, not where the visit stands (PV1 carries no status we keep).
            "status": "unknown",
            "class": klass,
            "subject": reference("Patient", refs, patient_key(state, cfg)),
            "location": [{"location": {"display": visit.location}}] if visit.location else None,
        }
    )


def retired_patient_key(key: PatientKey, cfg: FhirMappingConfig) -> dict:
    """The identifier of a Patient merged away (ADT A40), like `patient_key` for the survivor."""
    ident = identifier(cfg.mrn_system(key.issuer), key.mrn, "MR")
    if key.issuer:
        ident["assigner"] = {"display": key.issuer}
    return ident


def replaced_by(stored: dict | None, key: dict, survivor: str) -> dict:
    """The merged-away Patient: what the server holds (or only its identifier when it holds
    nothing), inactive and linked `replaced-by` to the surviving Patient (`Patient/id`)."""
    out = {k: v for k, v in (stored or {"resourceType": "Patient", "identifier": [key]}).items() if k not in ("id", "meta", "text")}
    links = [link for link in out.get("link") or [] if (link.get("other") or {}).get("reference") != survivor]
    out["active"] = False
    out["link"] = [*links, {"other": {"reference": survivor}, "type": "replaced-by"}]
    return out
