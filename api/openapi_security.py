"""The guard's answers in the OpenAPI document: bearer auth, 401/403 on protected routes,
415 and a required JSON body on state-changing ones (api/guard.py enforces all of it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from radflow.api.policy import POLICY, PUBLIC, STATE_CHANGING

_ERROR = {"content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}}
# The guard answers /fhir paths with an OperationOutcome (api/guard.py _refuse).
_FHIR_ERROR = {"content": {"application/fhir+json": {"schema": {
    "type": "object", "required": ["resourceType", "issue"],
    "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]}, "issue": {"type": "array"}}}}}}


def install(app: FastAPI, enforcing: bool) -> None:
    """`enforcing`: tokens are checked (401/403 can happen); with auth off only 415 is documented."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        if enforcing:
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer",
                "description": "an API key (RADFLOW_API_KEYS) or an OIDC access token (JWT); see docs/security.md",
            }
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                need = POLICY.get((method.upper(), path))
                if need == PUBLIC:
                    continue
                responses = op.setdefault("responses", {})
                error = _FHIR_ERROR if path.startswith("/fhir") else _ERROR
                if enforcing:
                    op["security"] = [{"bearer": []}]
                    responses.setdefault("401", {"description": "no or invalid bearer token", **error})
                    responses.setdefault("403", {"description": f"the token lacks the {need} role", **error})
                if method.upper() in STATE_CHANGING:
                    responses.setdefault("415", {"description": "a JSON body with a JSON Content-Type is required", **error})
                    if "requestBody" in op:
                        op["requestBody"]["required"] = True
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
