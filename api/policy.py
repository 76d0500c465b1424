"""Which role each route needs. Every route of the app must be listed here: a route without
a policy is refused (403) and fails tests/api/test_api_auth.py's table."""

from __future__ import annotations

from radflow.api.auth import Role

PUBLIC = "public"  # no token needed: liveness, the API description, the FHIR CapabilityStatement

POLICY: dict[tuple[str, str], Role | str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/livez"): PUBLIC,  # probes and Prometheus (radflow/infra/health.py): no PHI in either
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,  # Swagger UI / ReDoc scripts served locally (api/docs.py)
    ("GET", "/fhir/metadata"): PUBLIC,
    ("GET", "/orders"): Role.READER,
    ("GET", "/orders/{accession}"): Role.READER,
    ("GET", "/orders/{accession}/timeline"): Role.READER,
    ("GET", "/exceptions"): Role.READER,
    ("GET", "/exceptions/{kind}/{key}"): Role.READER,
    ("GET", "/fhir/ServiceRequest"): Role.READER,
    ("GET", "/fhir/ServiceRequest/{id}"): Role.READER,
    ("GET", "/fhir/Endpoint/{id}"): Role.READER,
    ("GET", "/fhir/DiagnosticReport"): Role.READER,
    ("GET", "/fhir/DiagnosticReport/{id}"): Role.READER,
    ("GET", "/fhir/ImagingStudy"): Role.READER,
    ("GET", "/fhir/ImagingStudy/{id}"): Role.READER,
    ("GET", "/fhir/Task"): Role.READER,
    ("GET", "/fhir/Task/{id}"): Role.READER,
    ("POST", "/orders/{accession}/schedule"): Role.OPERATOR,
    ("POST", "/orders/{accession}/cancel"): Role.OPERATOR,
    ("POST", "/orders/{accession}/retry"): Role.OPERATOR,
    ("POST", "/orders/{accession}/skip"): Role.OPERATOR,
    ("POST", "/orders/{accession}/link-study"): Role.OPERATOR,
    ("POST", "/exceptions/{kind}/{key}/dismiss"): Role.OPERATOR,
    ("POST", "/bulk/orders/{action}"): Role.OPERATOR,
    ("POST", "/fhir/ServiceRequest"): Role.INTAKE,
    ("PUT", "/fhir/ServiceRequest/{id}"): Role.INTAKE,
    ("POST", "/codec/decode"): Role.READER,  # a PHI read (the Temporal UI showing payloads)
    ("POST", "/codec/encode"): Role.OPERATOR,  # input the workers will take as radflow's own
}

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def required(method: str, path_template: str) -> Role | str | None:
    """The role a route needs, PUBLIC, or None (no policy: refuse)."""
    return POLICY.get((method, path_template))
