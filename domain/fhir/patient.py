"""Patient (PID) and Encounter (PV1) from the order's patient and visit."""

from __future__ import annotations

from domain.fhir.common import V3_ACT_CODE, V3_NULL_FLAVOR, Refs, fhir_date, human_name, prune, reference
from domain.fhir.config import FhirMappingConfig
from domain.fhir.keys import encounter_key, patient_key
from domain.order import OrderState

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
