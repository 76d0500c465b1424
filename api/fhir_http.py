"""FHIR over HTTP: the media type, OperationOutcome errors and searchset Bundles."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

FHIR_JSON = "application/fhir+json"


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        # Names and report text stay readable UTF-8, as FHIR JSON is defined to be.
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class FhirError(Exception):
    """Raised anywhere in the FHIR routes; answered as an OperationOutcome."""

    def __init__(
        self, status: int, message: str, code: str = "processing", expression: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.expression = expression
        self.headers = headers


class OperationOutcomeIssue(BaseModel):
    model_config = ConfigDict(extra="allow")
    severity: str = Field(description="fatal, error, warning or information")
    code: str = Field(description="FHIR issue type, e.g. invalid, not-found, conflict, login")
    diagnostics: str | None = Field(None, description="what went wrong, in one line")
    expression: list[str] | None = Field(None, description="where in the request (FHIRPath)")


class OperationOutcome(BaseModel):
    """What every FHIR error answer is (documented in the OpenAPI document)."""

    model_config = ConfigDict(extra="allow")
    resourceType: str = Field("OperationOutcome", description="always OperationOutcome")
    issue: list[OperationOutcomeIssue] = Field(description="one entry per problem")


_WHY = {
    400: "not JSON, not an R4 resource, or an unsupported/malformed search parameter",
    404: "no such resource (ids are accessions written as FHIR ids)",
    409: "refused by the order (e.g. a change to a cancelled order)",
    413: "request body over RADFLOW_API_MAX_BODY_BYTES (refused before it is read)",
    415: "not a JSON content type",
    422: "valid FHIR against radflow's rules (status, intent, code, identifiers, subject), or a bad header",
    503: "Temporal unavailable: nothing was applied, retry (Retry-After)",
}


def fhir_errors_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a FHIR route: each status with the OperationOutcome schema."""
    return {status: {"model": OperationOutcome, "description": _WHY[status]} for status in statuses}


RESOURCE_BODY = {
    "requestBody": {
        "required": True,
        "description": "an R4 ServiceRequest (JSON)",
        "content": {media: {"schema": {"type": "object", "additionalProperties": True}} for media in (FHIR_JSON, "application/json")},
    }
}


def operation_outcome(message: str, code: str, expression: str = "", severity: str = "error") -> dict:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_response(err: FhirError) -> FhirResponse:
    return FhirResponse(operation_outcome(err.message, err.code, err.expression), status_code=err.status, headers=err.headers)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def searchset(request: Request, resources: list[dict], total: int) -> dict:
    base = base_url(request)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": str(request.url)}],
    }
    if resources:  # FHIR JSON has no empty arrays
        bundle["entry"] = [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ]
    return bundle


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk is what deep input breaks)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
