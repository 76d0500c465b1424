"""What the API writes to the audit trail (radflow/infra/audit_trail.py) for each non-public request.

Who (principal name, roles, how authenticated, and the OS user the CLI reports as
`client_user`: a detail, never trusted for anything), what (method, route, path, query, the
FHIR interaction it amounts to), which order (accession or FHIR resource) and patient (by
identifier, when the route learned it), when (UTC), outcome (HTTP status) and the source
address: the TCP peer, or, when the peer is a configured proxy (RADFLOW_API_TRUSTED_PROXIES),
the nearest address in X-Forwarded-For that is not one (the peer is kept as `peer`).

When it is written (api/guard.py): a state change (create/update) gets an `attempt` line before it is
applied (no line, no change: 503) and its outcome line before the answer goes out; a read
or a refusal gets its line before the answer goes out (no line, no PHI: 503).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from starlette.requests import Request

from radflow.api.auth import Principal
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.order import OrderData
from radflow.infra.audit_trail import ATTEMPT, CREATE, OPERATION, READ, SEARCH, UPDATE, AuditTrail

AUDIT_KEY = "radflow.audit"  # request-scoped details routes add (note_order)
CLIENT_USER_HEADER = "x-radflow-client-user"
_PRINTABLE = re.compile(r"[^\x21-\x7e]")
_FHIR_INSTANCE = re.compile(r"^/fhir/([A-Za-z]+)/\{id\}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# POSTs that change nothing: the codec server decoding payloads for the Temporal UI is a PHI read;
# encoding is an operation with no effect of its own (what the UI then sends goes to Temporal).
_NOT_CHANGES = {"/codec/decode": READ, "/codec/encode": OPERATION}


def interaction_of(method: str, template: str | None) -> str:
    if template in _NOT_CHANGES:
        return _NOT_CHANGES[template]
    if method in ("GET", "HEAD"):
        if template is None:
            return READ
        return READ if "{" in template else SEARCH
    if method == "POST" and template is not None and _FHIR_INSTANCE.match(template + "/{id}"):
        return CREATE  # POST /fhir/<Type>
    if method in ("PUT", "POST") and template is not None:
        return UPDATE  # PUT a resource; POST an action on an order or exception changes it
    return OPERATION


def note_order(request: Request, order: OrderData, mapping: FhirMappingConfig) -> None:
    """Routes that learned the order name it and its patient (by identifier) in the request's audit line."""
    ctx = request.scope.get(AUDIT_KEY)
    if ctx is None:
        return
    if order.accession:
        ctx["order"] = order.accession
    if order.patient.mrn:
        ctx["patient"] = {"system": mapping.mrn_system(order.patient.issuer), "value": order.patient.mrn}


class ApiAudit:
    def __init__(self, trail: AuditTrail, trusted_proxies: list[str] = ()) -> None:
        self.trail = trail
        self.proxies: list[Network] = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)

    def source(self, peer: str, forwarded_for: str) -> str:
        """The client's address: the peer, unless the peer is a trusted proxy that forwarded it."""
        if not self._trusted(peer) or not forwarded_for:
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):  # the right-most hops were added by our own proxies
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # garbage in the header: believe only what the socket says
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer

    def describe(self, scope: dict[str, Any], headers: dict[str, str], principal: Principal | None,
                 method: str, path: str, template: str | None, params: dict[str, str]) -> dict[str, Any]:
        client = scope.get("client")
        peer = client[0] if client else ""
        source = self.source(peer, headers.get("x-forwarded-for", ""))
        entry: dict[str, Any] = {
            "who": principal.name if principal else None,
            "roles": sorted(r.value for r in principal.roles) if principal else [],
            "auth": principal.method if principal else None,
            "action": f"{method} {template or path}",
            "interaction": interaction_of(method, template),
            "path": path,
            "order": params.get("accession") or params.get("id") or None,
            "outcome": None,
            "source": source,
        }
        if source != peer:
            entry["peer"] = peer
        if template and (m := _FHIR_INSTANCE.match(template)) and params.get("id"):
            entry["resource"] = f"{m.group(1)}/{params['id']}"
        if query := scope.get("query_string", b"").decode("latin-1"):
            entry["query"] = query
        if client_user := _PRINTABLE.sub("", headers.get(CLIENT_USER_HEADER, ""))[:64]:
            entry["client_user"] = client_user
        return entry

    def attempt(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Durable before a change is applied; raises AuditUnavailable."""
        return self.trail.append({**entry, "phase": ATTEMPT})

    def outcome(self, entry: dict[str, Any], status: int, extra: dict[str, Any], attempt_id: str | None) -> None:
        """Durable before the answer goes out; raises AuditUnavailable."""
        line = {**entry, **extra, "outcome": status}
        if attempt_id:
            line["attempt"] = attempt_id
        self.trail.append(line)
