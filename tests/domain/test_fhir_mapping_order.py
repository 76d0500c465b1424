"""Patient, Encounter, ServiceRequest and Task from order states (R4B-validated, exact fields)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.fhir import FhirMappingConfig, business_identifier, encounter, patient, service_request, task
from radflow.domain.order import Attention
from tests.domain.fhir_states import (
    T0,
    minimal_order,
    non_ascii_order,
    reported,
    state,
    v23_order,
    v24_order,
    v25_order,
)

CFG = FhirMappingConfig(identifier_base="https://rf.test/fhir")
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
S = OrderStatus


def ident_types(resource: dict) -> dict[str, str]:
    out = {}
    for ident in resource["identifier"]:
        codes = [c["code"] for c in (ident.get("type") or {}).get("coding", [])]
        out[codes[0] if codes else ident["system"]] = ident["value"]
    return out


# ------------------------------------------------------------------ Patient
def test_patient_v23_exact():
    res = patient(state(v23_order()), CFG)
    Patient.model_validate(res)
    assert res == {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": "https://rf.test/fhir/mrn/HOSP",
                "value": "M23",
                "assigner": {"display": "HOSP"},
            }
        ],
        "name": [{"use": "official", "family": "Synthetic", "given": ["Ann"]}],
        "gender": "female",
        "birthDate": "1975-03-15",
    }
    assert business_identifier(res) == ("https://rf.test/fhir/mrn/HOSP", "M23")


def test_patient_oid_issuer_middle_name_and_dtm_birth_date():
    res = patient(state(v24_order()), CFG)
    Patient.model_validate(res)
    assert res["identifier"][0]["system"] == "urn:oid:1.2.3.4.5"
    assert res["name"] == [{"use": "official", "family": "Example", "given": ["Bo", "C"]}]
    assert res["birthDate"] == "1960-01-01"  # HL7 DTM truncated to the date
    assert res["gender"] == "male"


def test_patient_year_only_birth_date_and_unknown_gender_without_issuer():
    res = patient(state(v25_order()), CFG)
    Patient.model_validate(res)
    assert res["birthDate"] == "2001"
    assert res["gender"] == "unknown"
    assert res["identifier"][0]["system"] == "https://rf.test/fhir/mrn"
    assert "assigner" not in res["identifier"][0]


def test_patient_minimal_has_only_the_mrn():
    res = patient(state(minimal_order()), CFG)
    Patient.model_validate(res)
    assert set(res) == {"resourceType", "identifier"}


def test_patient_non_ascii_names_survive_and_issuer_is_url_quoted():
    res = patient(state(non_ascii_order()), CFG)
    model = Patient.model_validate(res)
    assert model.name[0].family == "Müller-Łukasiewicz"
    assert res["name"][0]["given"] == ["Zoë", "Ægir"]
    assert res["identifier"][0]["system"] == "https://rf.test/fhir/mrn/KLINIK%20%C3%9C"
    assert CFG.issuer_of(res["identifier"][0]["system"]) == "KLINIK Ü"
    assert '"Müller' in model.model_dump_json()


@pytest.mark.parametrize("sex,gender", [("M", "male"), ("F", "female"), ("O", "other"), ("A", "other"), ("U", "unknown"), ("", None)])
def test_patient_gender_table(sex, gender):
    order = minimal_order()
    order.patient.sex = sex
    assert patient(state(order), CFG).get("gender") == gender


@pytest.mark.parametrize("raw", ["19801340", "1980-01-01", "abc", "19801"])
def test_patient_implausible_birth_dates_are_left_out(raw):
    order = minimal_order()
    order.patient.birth_date = raw
    res = patient(state(order), CFG)
    Patient.model_validate(res)
    assert "birthDate" not in res


def test_mrn_system_configuration():
    cfg = FhirMappingConfig(identifier_base="https://x.test/", mrn_systems={"HOSP": "urn:oid:2.16.1"})
    assert cfg.mrn_system("HOSP") == "urn:oid:2.16.1"
    assert cfg.issuer_of("urn:oid:2.16.1") == "HOSP"
    assert cfg.mrn_system("2.16.840.1") == "urn:oid:2.16.840.1"
    assert cfg.issuer_of("urn:oid:2.16.840.1") == "2.16.840.1"
    assert cfg.mrn_system("") == "https://x.test/mrn"
    assert cfg.accession_system == "https://x.test/accession"
    assert cfg.issuer_of("http://elsewhere/mrn") is None


# ------------------------------------------------------------------ Encounter
def test_encounter_none_without_visit_number():
    assert encounter(state(v23_order()), CFG) is None
    assert encounter(state(minimal_order()), CFG) is None


def test_encounter_inpatient_with_location():
    res = encounter(state(v24_order()), CFG)
    Encounter.model_validate(res)
    assert res["identifier"] == [
        {
            "type": {"coding": [{"system": V2_0203, "code": "VN", "display": "Visit number"}]},
            "system": "https://rf.test/fhir/visit",
            "value": "V24",
        }
    ]
    assert res["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"}
    assert res["status"] == "unknown"
    assert res["location"] == [{"location": {"display": "WARD3^101^A"}}]
    assert res["subject"]["identifier"]["value"] == "M24"
    assert business_identifier(res) == ("https://rf.test/fhir/visit", "V24")


@pytest.mark.parametrize("pv1_2,code", [("E", "EMER"), ("O", "AMB"), ("P", "PRENC"), ("X", "UNK"), ("", "UNK")])
def test_encounter_class_table(pv1_2, code):
    order = v25_order()
    order.visit.patient_class = pv1_2
    res = encounter(state(order), CFG)
    Encounter.model_validate(res)
    assert res["class"]["code"] == code


def test_encounter_uses_server_reference_when_given():
    res = encounter(state(v24_order()), CFG, refs={"Patient": "Patient/p1"})
    assert res["subject"] == {"reference": "Patient/p1"}


# ------------------------------------------------------------------ ServiceRequest
def test_service_request_v23_exact():
    res = service_request(state(v23_order()), CFG)
    ServiceRequest.model_validate(res)
    assert ident_types(res) == {"ACSN": "A23001", "PLAC": "P-23-1"}
    assert res["identifier"][0]["system"] == "https://rf.test/fhir/accession"
    assert res["identifier"][1]["system"] == "https://rf.test/fhir/placer"
    assert res["status"] == "active"
    assert res["intent"] == "order"
    assert res["priority"] == "stat"
    assert res["code"] == {
        "coding": [{"system": "https://rf.test/fhir/procedure/L", "code": "CTHEAD", "display": "CT head"}],
        "text": "CT head",
    }
    assert res["occurrenceDateTime"] == "2030-03-01T09:30:00Z"
    assert res["orderDetail"] == [{"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]}]
    assert res["performer"] == [
        {"type": "Device", "identifier": {"system": "https://rf.test/fhir/station", "value": "CT01"}, "display": "CT room 1"}
    ]
    assert res["subject"]["type"] == "Patient"
    assert res["subject"]["identifier"]["value"] == "M23"
    assert "encounter" not in res and "requester" not in res and "reasonCode" not in res
    assert business_identifier(res) == ("https://rf.test/fhir/accession", "A23001")


def test_service_request_v24_provider_reason_cpt_encounter():
    res = service_request(state(v24_order()), CFG)
    ServiceRequest.model_validate(res)
    assert ident_types(res) == {"ACSN": "A24001", "PLAC": "P-24-1", "FILL": "F-24-1"}
    assert res["priority"] == "routine"
    assert res["code"]["coding"][0]["system"] == "http://www.ama-assn.org/go/cpt"
    assert res["requester"] == {
        "type": "Practitioner",
        "identifier": {"system": "https://rf.test/fhir/practitioner", "value": "DR7"},
        "display": "Dr Olga Order",
    }
    assert res["reasonCode"] == [{"text": "Abdominal pain"}]
    assert res["authoredOn"] == "2030-03-01T08:00:00Z"
    assert res["encounter"]["identifier"]["value"] == "V24"


def test_service_request_v25_study_uid_and_loinc():
    res = service_request(state(v25_order()), CFG)
    ServiceRequest.model_validate(res)
    assert {"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.2.1125.25"} in res["identifier"]
    assert res["code"]["coding"][0]["system"] == "http://loinc.org"
    assert res["priority"] == "asap"
    assert "performer" not in res  # scheduled by modality only


def test_service_request_minimal():
    res = service_request(state(minimal_order(), S.ORDERED), CFG)
    ServiceRequest.model_validate(res)
    # `code` is always there: orderDetail requires it (prr-1), and an order is for something.
    assert set(res) == {"resourceType", "identifier", "status", "intent", "category", "subject", "code"}
    assert res["code"] == {"text": "imaging procedure (not specified by the placer)"}


def test_service_request_refs_win_over_logical_references():
    refs = {"Patient": "Patient/9", "Encounter": "Encounter/4"}
    res = service_request(state(v24_order()), CFG, refs)
    assert res["subject"] == {"reference": "Patient/9"}
    assert res["encounter"] == {"reference": "Encounter/4"}


@pytest.mark.parametrize(
    "status,report,expected",
    [
        (S.ORDERED, None, "active"),
        (S.SCHEDULED, None, "active"),
        (S.IN_PROGRESS, None, "active"),
        (S.ACQUIRED, None, "active"),
        (S.REPORTED, ReportStatus.PRELIMINARY, "active"),
        (S.REPORTED, ReportStatus.FINAL, "completed"),
        (S.REPORTED, ReportStatus.CORRECTED, "completed"),
        (S.DELIVERED, ReportStatus.FINAL, "completed"),
        (S.CANCELLED, None, "revoked"),
        (S.DISCONTINUED, None, "revoked"),
    ],
)
def test_service_request_status(status, report, expected):
    st = reported(v23_order(), report) if report else state(v23_order())
    st.status = status
    assert service_request(st, CFG)["status"] == expected


def test_needs_attention_shows_the_clinical_status():
    st = state(v23_order(), S.NEEDS_ATTENTION, status_before_attention=S.SCHEDULED)
    st.attention = Attention(reason="x", step="fhir:NEW_ORDER", since=T0)
    assert service_request(st, CFG)["status"] == "active"
    assert task(st, CFG)["status"] == "requested"


@pytest.mark.parametrize("hl7,fhir", [("S", "stat"), ("A", "asap"), ("R", "routine"), ("T", "urgent"), ("TM30", "urgent"), ("STAT", "stat"), ("P", None), ("", None)])
def test_priority_table(hl7, fhir):
    order = minimal_order()
    order.priority = hl7
    assert service_request(state(order), CFG).get("priority") == fhir


# ------------------------------------------------------------------ Task
def test_task_scheduled_exact():
    res = task(state(v24_order()), CFG)
    Task.model_validate(res)
    sr_ref = {
        "type": "ServiceRequest",
        "identifier": {
            "type": {"coding": [{"system": V2_0203, "code": "ACSN", "display": "Accession ID"}]},
            "system": "https://rf.test/fhir/accession",
            "value": "A24001",
        },
    }
    assert res["identifier"] == [
        {"system": "https://rf.test/fhir/procedure-step", "value": "A24001"},
        {"system": "https://rf.test/fhir/procedure-step/sps-id", "value": "SPS24"},
    ]
    assert res["status"] == "requested"
    assert res["businessStatus"] == {"text": "SCHEDULED"}
    assert res["intent"] == "order"
    assert res["focus"] == sr_ref
    assert res["basedOn"] == [sr_ref]
    assert res["owner"] == {"type": "Device", "identifier": {"system": "https://rf.test/fhir/station", "value": "CT02"}, "display": "CT02"}
    assert res["restriction"] == {"period": {"start": "2030-03-01T09:30:00Z"}}
    assert "executionPeriod" not in res
    assert res["for"]["identifier"]["value"] == "M24"
    assert res["encounter"]["identifier"]["value"] == "V24"
    assert business_identifier(res) == ("https://rf.test/fhir/procedure-step", "A24001")


@pytest.mark.parametrize(
    "status,expected",
    [
        (S.ORDERED, "requested"),
        (S.SCHEDULED, "requested"),
        (S.IN_PROGRESS, "in-progress"),
        (S.ACQUIRED, "completed"),
        (S.REPORTED, "completed"),
        (S.DELIVERED, "completed"),
        (S.CANCELLED, "cancelled"),
        (S.DISCONTINUED, "failed"),
    ],
)
def test_task_status_mirrors_the_step(status, expected):
    st = state(v23_order(), status)
    res = task(st, CFG)
    Task.model_validate(res)
    assert res["status"] == expected


def test_task_execution_period_from_start_to_acquisition():
    started = datetime(2030, 3, 1, 9, 31, 5, 250000, tzinfo=UTC)
    acquired = datetime(2030, 3, 1, 9, 52, tzinfo=UTC)
    running = task(state(v23_order(), S.IN_PROGRESS, started_at=started), CFG)
    assert running["executionPeriod"] == {"start": "2030-03-01T09:31:05.250Z"}
    done = task(state(v23_order(), S.ACQUIRED, started_at=started, acquired_at=acquired), CFG)
    Task.model_validate(done)
    assert done["executionPeriod"] == {"start": "2030-03-01T09:31:05.250Z", "end": "2030-03-01T09:52:00Z"}


def test_task_with_server_references():
    res = task(state(v23_order()), CFG, {"ServiceRequest": "ServiceRequest/sr1", "Patient": "Patient/p1"})
    assert res["focus"] == {"reference": "ServiceRequest/sr1"}
    assert res["basedOn"] == [{"reference": "ServiceRequest/sr1"}]
    assert res["for"] == {"reference": "Patient/p1"}


def test_task_unscheduled_minimal():
    res = task(state(minimal_order(), S.ORDERED), CFG)
    Task.model_validate(res)
    assert "owner" not in res and "restriction" not in res and "code" not in res
    assert res["authoredOn"] == T0.isoformat().replace("+00:00", "Z")
