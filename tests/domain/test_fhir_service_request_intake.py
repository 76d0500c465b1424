"""ServiceRequest -> OrderData (FHIR intake): resolution of subject/encounter/requester, typed errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radflow.domain.fhir import FhirInputError, FhirMappingConfig, order_from_service_request, patient, placer_key, service_request
from tests.domain.fhir_states import non_ascii_order, state, v23_order, v24_order, v25_order

CFG = FhirMappingConfig(identifier_base="https://rf.test/fhir")
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def with_contained_patient(sr: dict, pat: dict) -> dict:
    return {**sr, "contained": [{**pat, "id": "p"}], "subject": {"reference": "#p"}}


def minimal_sr(**over) -> dict:
    sr = {
        "resourceType": "ServiceRequest",
        "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "system": "urn:oid:9.9", "value": "PL1"}],
        "status": "active",
        "intent": "order",
        "code": {"text": "CT head"},
        "subject": {"identifier": {"system": "https://rf.test/fhir/mrn/HOSP", "value": "M1"}},
    }
    sr.update(over)
    return sr


@pytest.mark.parametrize("make", [v23_order, v24_order, v25_order, non_ascii_order])
def test_round_trip_of_our_own_mapping(make):
    order = make()
    st = state(order)
    sr = with_contained_patient(service_request(st, CFG), patient(st, CFG))
    back = order_from_service_request(sr, CFG)
    assert back.accession == order.accession
    assert back.placer_number == order.placer_number
    assert back.placer_system == ""  # our own placer system is implied
    assert back.filler_number == order.filler_number
    assert back.study_instance_uid == order.study_instance_uid
    assert back.patient.mrn == order.patient.mrn
    assert back.patient.issuer == order.patient.issuer
    assert back.patient.name.family == order.patient.name.family
    assert back.patient.name.given == order.patient.name.given
    assert back.patient.name.middle == order.patient.name.middle
    assert back.patient.sex == ({"A": "O"}.get(order.patient.sex, order.patient.sex))
    assert back.patient.birth_date == order.patient.birth_date[:8]
    assert (back.procedure.code, back.procedure.coding_system) == (order.procedure.code, order.procedure.coding_system)
    assert back.procedure.text == order.procedure.text
    assert back.schedule.start == order.schedule.start
    assert back.schedule.modality == order.schedule.modality
    assert back.schedule.station_ae == order.schedule.station_ae
    assert back.priority == order.priority
    assert back.reason == order.reason
    assert back.requested_at == order.requested_at
    assert back.visit.visit_number == order.visit.visit_number
    assert back.ordering_provider.id == order.ordering_provider.id
    assert back.character_set == "UNICODE UTF-8"


def test_contained_encounter_and_practitioner():
    sr = minimal_sr(
        contained=[
            {"resourceType": "Encounter", "id": "e", "status": "in-progress", "identifier": [{"value": "V9"}],
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
             "location": [{"location": {"display": "ER bay 2"}}]},
            {"resourceType": "Practitioner", "id": "dr", "identifier": [{"value": "D42"}],
             "name": [{"family": "Ordering", "given": ["Olu", "B"]}]},
        ],
        encounter={"reference": "#e"},
        requester={"reference": "#dr"},
        priority="urgent",
        authoredOn="2030-01-02T03:04:05+01:00",
        occurrencePeriod={"start": "2030-01-03T08:00:00Z"},
        reasonCode=[{"coding": [{"system": "http://snomed.info/sct", "code": "49727002", "display": "Cough"}]}],
    )
    order = order_from_service_request(sr, CFG)
    assert (order.visit.visit_number, order.visit.patient_class, order.visit.location) == ("V9", "E", "ER bay 2")
    assert order.ordering_provider.id == "D42"
    assert (order.ordering_provider.name.family, order.ordering_provider.name.given, order.ordering_provider.name.middle) == ("Ordering", "Olu", "B")
    assert order.priority == "T"
    assert order.requested_at == datetime(2030, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert order.schedule.start == datetime(2030, 1, 3, 8, 0, tzinfo=UTC)
    assert order.reason == "Cough"
    assert order.procedure.text == "CT head" and order.procedure.code == ""


def test_subject_by_identifier_and_foreign_placer_system():
    order = order_from_service_request(minimal_sr(), CFG)
    assert (order.patient.mrn, order.patient.issuer) == ("M1", "HOSP")
    assert order.accession == ""
    assert (order.placer_number, order.placer_system) == ("PL1", "urn:oid:9.9")
    assert placer_key(order, CFG) == "PL1^urn:oid:9.9"
    assert order.schedule.is_scheduled() is False


def test_untyped_identifier_is_the_placer_number():
    sr = minimal_sr(identifier=[{"system": "https://ehr.test/orders", "value": "E-77"}])
    order = order_from_service_request(sr, CFG)
    assert (order.placer_number, order.placer_system) == ("E-77", "https://ehr.test/orders")


def test_referenced_patient_passed_in_and_oid_issuer():
    pat = {"resourceType": "Patient", "id": "123", "identifier": [{"system": "urn:oid:1.2.3.4.5", "value": "M77"}],
           "name": [{"use": "usual", "family": "Nick"}, {"use": "official", "family": "Offiziell", "given": ["Ulla"]}],
           "gender": "female", "birthDate": "1999-12-31"}
    order = order_from_service_request(minimal_sr(subject={"reference": "Patient/123"}), CFG, patient=pat)
    assert (order.patient.mrn, order.patient.issuer) == ("M77", "1.2.3.4.5")
    assert (order.patient.name.family, order.patient.name.given) == ("Offiziell", "Ulla")
    assert (order.patient.sex, order.patient.birth_date) == ("F", "19991231")


def test_revoked_is_accepted_for_updates_only():
    with pytest.raises(FhirInputError) as err:
        order_from_service_request(minimal_sr(status="revoked"), CFG)
    assert err.value.expression == "ServiceRequest.status" and not err.value.structural
    assert order_from_service_request(minimal_sr(status="revoked"), CFG, for_update=True).placer_number == "PL1"


@pytest.mark.parametrize(
    "resource,expression,code,structural",
    [
        ({"resourceType": "Patient"}, "ServiceRequest.resourceType", "structure", True),
        ({"status": "active"}, "", "structure", True),  # no resourceType at all
        (minimal_sr(subject=None), "ServiceRequest.subject", "required", True),
        (minimal_sr(status="completed"), "ServiceRequest.status", "business-rule", False),
        (minimal_sr(status="nonsense"), "ServiceRequest.status", "value", False),
        (minimal_sr(intent="plan"), "ServiceRequest.intent", "business-rule", False),
        (minimal_sr(code=None), "ServiceRequest.code", "required", False),
        (minimal_sr(identifier=None), "ServiceRequest.identifier", "required", False),
        (minimal_sr(subject={"reference": "Patient/1"}), "ServiceRequest.subject", "not-found", False),
        (minimal_sr(subject={"reference": "#x"}), "ServiceRequest.subject", "not-found", False),
        (minimal_sr(subject={"display": "someone"}), "ServiceRequest.subject", "required", False),
        (minimal_sr(authoredOn="2030-13-01"), "ServiceRequest.authoredOn", "structure", True),
        (minimal_sr(identifier=[{"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": "X" * 17}]),
         "ServiceRequest.identifier", "value", False),
    ],
)
def test_errors_name_the_element(resource, expression, code, structural):
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(FhirInputError) as err:
        order_from_service_request(resource, CFG)
    assert err.value.expression == expression
    assert err.value.code == code
    assert err.value.structural is structural
    assert err.value.message


def test_contained_patient_without_mrn_is_refused():
    sr = with_contained_patient(minimal_sr(), {"resourceType": "Patient", "name": [{"family": "X"}]})
    with pytest.raises(FhirInputError) as err:
        order_from_service_request(sr, CFG)
    assert err.value.expression == "Patient.identifier"


def test_code_system_uris_map_back_to_hl7_names():
    cfg = FhirMappingConfig(code_systems={"99RAD": "https://site.test/codes"})
    assert cfg.hl7_code_system("https://site.test/codes") == "99RAD"
    assert cfg.code_system("99RAD") == "https://site.test/codes"
    assert cfg.hl7_code_system("http://snomed.info/sct") == "SCT"
    assert cfg.hl7_code_system("https://unknown.test/cs") == "https://unknown.test/cs"
    assert cfg.code_system("https://unknown.test/cs") == "https://unknown.test/cs"


MRN_IDENT = {"system": "https://rf.test/fhir/mrn/HOSP", "value": "M1"}


@pytest.mark.parametrize(
    "subject",
    [
        # What most EHRs send: a literal reference into their own server plus the MRN.
        {"reference": "Patient/p1", "identifier": MRN_IDENT},
        {"reference": "https://ehr.test/fhir/Patient/p1", "type": "Patient", "identifier": MRN_IDENT, "display": "X"},
        # Conditional reference (as in a transaction Bundle).
        {"reference": "Patient?identifier=https://rf.test/fhir/mrn/HOSP|M1"},
    ],
)
def test_subject_literal_or_conditional_reference_resolves_by_identifier(subject):
    order = order_from_service_request(minimal_sr(subject=subject), CFG)
    assert (order.patient.mrn, order.patient.issuer) == ("M1", "HOSP")


def test_contained_patient_wins_over_the_reference_identifier():
    pat = {"resourceType": "Patient", "identifier": [{"system": "https://rf.test/fhir/mrn/HOSP", "value": "M9"}],
           "name": [{"family": "Contained"}]}
    sr = with_contained_patient(minimal_sr(), pat)
    sr["subject"]["identifier"] = MRN_IDENT
    order = order_from_service_request(sr, CFG)
    assert (order.patient.mrn, order.patient.name.family) == ("M9", "Contained")


@pytest.mark.parametrize(
    "subject,code",
    [
        ({"reference": "Group/g1", "identifier": MRN_IDENT}, "business-rule"),
        ({"reference": "Patient?name=Smith"}, "not-supported"),
        ({"reference": "Patient?identifier=sys|"}, "required"),
    ],
)
def test_subject_refusals(subject, code):
    with pytest.raises(FhirInputError) as err:
        order_from_service_request(minimal_sr(subject=subject), CFG)
    assert (err.value.expression, err.value.code) == ("ServiceRequest.subject", code)
