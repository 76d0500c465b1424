"""Audit lines -> BALP-style AuditEvents that are valid R4 (fhir.resources R4B models)."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from radflow.domain.fhir.audit_event import audit_event, outcome_code
from radflow.domain.fhir.config import FhirMappingConfig

BASE = {"id": "a" * 32, "time": "2030-01-01T09:00:00.000+00:00", "who": "ops-jane", "roles": ["operator"], "auth": "api-key",
        "source": "10.1.2.3"}


@pytest.mark.parametrize(("interaction", "action"), [("read", "R"), ("search-type", "E"), ("create", "C"), ("update", "U")])
def test_interactions_map_to_balp_actions_and_validate(interaction: str, action: str) -> None:
    line = BASE | {"interaction": interaction, "action": "X", "outcome": 200, "order": "ACC1",
                   "patient": {"system": "urn:oid:1.2.3", "value": "MRN1"}, "query": "status=SCHEDULED"}
    event = audit_event(line, FhirMappingConfig())
    AuditEvent.model_validate(event)
    assert (event["type"]["code"], event["subtype"][0]["code"], event["action"]) == ("rest", interaction, action)
    roles = [e["role"]["code"] for e in event["entity"]]
    assert roles == ["1", "4", "24"]  # patient, the order, the query
    assert base64.b64decode(event["entity"][2]["query"]).decode() == "status=SCHEDULED"


def test_outcomes_and_anonymous_callers() -> None:
    assert [outcome_code(s) for s in (200, 201, 401, 409, 503)] == ["0", "0", "4", "4", "8"]
    event = audit_event(BASE | {"who": None, "roles": [], "interaction": "read", "outcome": 401,
                                "resource": "DiagnosticReport/r1"}, FhirMappingConfig())
    AuditEvent.model_validate(event)
    assert event["agent"][0]["who"] == {"display": "unauthenticated"} and event["outcome"] == "4"
    assert event["entity"] == [{"what": {"reference": "DiagnosticReport/r1"},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                                         "display": "System Object"},
                                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4",
                                         "display": "Domain Resource"}}]
