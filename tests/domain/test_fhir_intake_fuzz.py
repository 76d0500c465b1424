"""Fuzzing FHIR intake: any JSON put anywhere in a valid ServiceRequest is either an order or a
FhirInputError (an OperationOutcome 400/422), never another exception (an HTTP 500)."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radflow.domain.fhir import FhirInputError, FhirMappingConfig, order_from_service_request

CFG = FhirMappingConfig(identifier_base="https://rf.test/fhir")
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

VALID = {
    "resourceType": "ServiceRequest",
    "contained": [
        {"resourceType": "Patient", "id": "p", "identifier": [{"system": "https://rf.test/fhir/mrn/H", "value": "M1"}],
         "name": [{"family": "F", "given": ["G"]}], "birthDate": "1970-01-02", "gender": "female"},
        {"resourceType": "Encounter", "id": "e", "status": "in-progress", "class": {"code": "AMB"},
         "identifier": [{"value": "V1"}], "location": [{"location": {"display": "Ward"}}]},
        {"resourceType": "Practitioner", "id": "d", "name": [{"family": "Doc"}], "identifier": [{"value": "D1"}]},
    ],
    "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "system": "https://rf.test/fhir/accession",
                    "value": "A1"}, {"system": "urn:oid:9.9", "value": "PL1"}],
    "status": "active",
    "intent": "order",
    "priority": "stat",
    "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT"}], "text": "CT chest"},
    "orderDetail": [{"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]}],
    "subject": {"reference": "#p", "identifier": {"system": "https://rf.test/fhir/mrn/H", "value": "M1"}},
    "encounter": {"reference": "#e"},
    "requester": {"reference": "#d"},
    "occurrenceDateTime": "2030-06-01T10:00:00Z",
    "authoredOn": "2030-05-01T10:00:00+02:00",
    "performer": [{"identifier": {"system": "https://rf.test/fhir/station", "value": "CT07"}, "display": "CT 7"}],
    "reasonCode": [{"text": "cough", "coding": [{"display": "Cough"}]}],
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["#p", "#e", "#x", "Patient/1", "Patient?identifier=a|b", "Patient?x=1", "", "T", "2030-13-01T00:00:00Z"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(VALID) if p]


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(PATHS), value=JSON, for_update=st.booleans())
def test_any_value_anywhere_is_an_order_or_a_typed_refusal(path, value, for_update) -> None:
    resource = copy.deepcopy(VALID)
    node = resource
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        order_from_service_request(resource, CFG, for_update=for_update)
    except FhirInputError:
        pass
