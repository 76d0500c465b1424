"""One audit-trail line -> a FHIR R4 AuditEvent in the style of IHE Basic Audit Log Patterns (BALP).

BALP's RESTful pattern: type `rest`, subtype the FHIR restful interaction, action C/R/U/D/E,
the client as the requesting agent (user, roles, network address) and the server as the
other agent, radflow as the source, and the data touched as entities: the Patient by
identifier only (never a name) and the order (ServiceRequest by accession, or the FHIR
resource read), plus the query of a search. The line keeps everything; the event carries
no name, birth date or report text.
"""

from __future__ import annotations

import base64
from typing import Any

from radflow.domain.fhir.config import FhirMappingConfig

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

# restful interaction -> AuditEvent.action (BALP: a search is an Execute)
ACTIONS = {"read": "R", "search-type": "E", "create": "C", "update": "U", "delete": "D", "operation": "E"}


def outcome_code(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (refused: 4xx), 8 serious failure (5xx)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def audit_event(entry: dict[str, Any], mapping: FhirMappingConfig, site: str = "radflow") -> dict[str, Any]:
    interaction = entry.get("interaction") or "read"
    status = int(entry.get("outcome") or 500)
    base = mapping.identifier_base.rstrip("/")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": entry["id"],
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": RESTFUL_INTERACTION, "code": interaction}],
        "action": ACTIONS.get(interaction, "E"),
        "recorded": entry["time"],
        "outcome": outcome_code(status),
        "outcomeDesc": f"{entry.get('action', '')} -> {status}".strip(),
        "agent": [_client_agent(entry, base), _server_agent(site)],
        "source": {
            "site": site,
            "observer": {"display": site},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    entities = _entities(entry, mapping)
    if entities:
        event["entity"] = entities
    return event


def _client_agent(entry: dict[str, Any], base: str) -> dict[str, Any]:
    who = entry.get("who")
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": ({"identifier": {"system": f"{base}/principal", "value": who}, "display": who} if who
                else {"display": "unauthenticated"}),
        "requestor": True,
    }
    if entry.get("roles"):
        agent["role"] = [{"text": role} for role in entry["roles"]]
    if entry.get("client_user"):
        agent["altId"] = entry["client_user"]  # as reported by the client (the CLI's OS user), not verified
    if entry.get("source"):
        agent["network"] = {"address": entry["source"], "type": "2"}  # 2 = IP address
    return agent


def _server_agent(site: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": site},
        "requestor": False,
    }


def _entities(entry: dict[str, Any], mapping: FhirMappingConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    patient = entry.get("patient")
    if patient and patient.get("value"):
        ident = {"value": patient["value"]}
        if patient.get("system"):
            ident["system"] = patient["system"]
        out.append({"what": {"type": "Patient", "identifier": ident},
                    "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                    "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}})
    if entry.get("resource"):
        out.append({"what": {"reference": entry["resource"]},
                    "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}})
    elif entry.get("order"):
        out.append({"what": {"type": "ServiceRequest",
                             "identifier": {"system": mapping.accession_system, "value": entry["order"]}},
                    "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}})
    if entry.get("query"):
        out.append({"type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                    "query": base64.b64encode(entry["query"].encode()).decode()})
    return out
