"""The API's front door (pure ASGI middleware): authenticate, authorise, demand JSON, audit.

It runs before routing and before a byte of the body is read, so a refused request has no
effect and learns nothing (an unknown path needs admin, so paths cannot be probed anonymously).
Routes are matched against api/policy.py's templates; a path no template matches needs admin.

State-changing requests must declare a JSON content type and carry a body: an HTML form or
`fetch` without CORS from another site can send neither `application/json` nor an
Authorization header, so a page a hospital user opens cannot act on orders (415 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import compile_path

from radflow.api.audit import AUDIT_KEY, ApiAudit
from radflow.api.auth import Authenticator, Principal, Role, Unauthenticated
from radflow.api.fhir_http import operation_outcome
from radflow.api.policy import POLICY, PUBLIC, STATE_CHANGING
from radflow.infra.audit_trail import CREATE, UPDATE, AuditUnavailable

log = logging.getLogger("radflow.api.audit")

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

PRINCIPAL_KEY = "radflow.principal"  # where the guard leaves the caller for the routes (api/deps.py)
_JSON = re.compile(r"^application/(json|[\w.+-]+\+json)\s*(;.*)?$", re.IGNORECASE)
AUDIT_DOWN = (503, "audit trail unavailable: nothing was done, retry", "transient", {"Retry-After": "2"})
_COMPILED = [(method, template, compile_path(template)[0], need) for (method, template), need in POLICY.items()]


def match(method: str, path: str) -> tuple[str | None, Role | str, dict[str, str]]:
    """(route template or None, what it needs, path params). Unknown paths need admin."""
    for m, template, regex, need in _COMPILED:
        if m == method and (found := regex.match(path)):
            return template, need, found.groupdict()
    return None, Role.ADMIN, {}


class Guard:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, audit: ApiAudit | None) -> None:
        self.app, self.auth, self.audit = app, authenticator, audit

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        root = scope.get("root_path", "")
        path = scope["path"][len(root):] if root and scope["path"].startswith(root) else scope["path"]
        template, need, params = match("GET" if method == "HEAD" else method, path)
        if need == PUBLIC:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        principal: Principal | None = None
        try:
            principal = await self.auth.authenticate(headers.get("authorization"))
        except Unauthenticated as err:
            refusal = (401, str(err), "login", {"WWW-Authenticate": 'Bearer realm="radflow"'})
        else:
            refusal = self._check(principal, need, method, headers)
        if self.audit is None:
            if refusal is not None:
                await _refuse(send, path, *refusal)
            else:
                scope[PRINCIPAL_KEY] = principal
                await self.app(scope, receive, send)
            return
        await self._audited(scope, receive, send, principal, refusal, method, path, template, params, headers)

    async def _audited(self, scope: Scope, receive: Callable, send: Callable, principal: Principal | None,
                       refusal: tuple | None, method: str, path: str, template: str | None,
                       params: dict[str, str], headers: dict[str, str]) -> None:
        audit = self.audit
        assert audit is not None
        entry = audit.describe(scope, headers, principal, method, path, template, params)
        changes = refusal is None and entry["interaction"] in (CREATE, UPDATE)
        attempt_id = None
        if changes:
            try:
                attempt_id = (await asyncio.to_thread(audit.attempt, entry))["id"]
            except AuditUnavailable as err:
                _audit_failed(err, entry)
                await _refuse(send, path, *AUDIT_DOWN)  # nothing was applied
                return
        extra: dict[str, Any] = {}
        scope[AUDIT_KEY] = extra  # routes add what they learn (api/audit.py note_order)
        state = {"status": 0, "swallow": False}

        async def send_audited(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                try:
                    await asyncio.to_thread(audit.outcome, entry, message["status"], extra, attempt_id)
                except AuditUnavailable as err:
                    _audit_failed(err, entry)
                    if not changes and refusal is None:  # a read nobody recorded is not answered; a change is done: say so
                        state["swallow"] = True
                        await _refuse(send, path, *AUDIT_DOWN)
                        return
            elif state["swallow"]:
                return
            await send(message)

        try:
            if refusal is not None:
                await _refuse(send_audited, path, *refusal)
            else:
                scope[PRINCIPAL_KEY] = principal
                await self.app(scope, receive, send_audited)
        finally:
            if not state["status"]:  # the app raised before answering: the server error answers
                with contextlib.suppress(AuditUnavailable):
                    await asyncio.to_thread(audit.outcome, entry, 500, extra, attempt_id)

    def _check(self, principal: Principal, need: Role | str, method: str, headers: dict[str, str]
               ) -> tuple[int, str, str, dict[str, str]] | None:
        if not principal.may(Role(need)):
            return 403, f"this needs the {Role(need).value} role", "forbidden", {}
        if method in STATE_CHANGING:
            has_body = headers.get("content-length", "0") not in ("", "0") or "chunked" in headers.get("transfer-encoding", "")
            if not (_JSON.match(headers.get("content-type", "")) and has_body):
                return 415, "a JSON body with Content-Type application/json is required", "not-supported", {}
        return None


async def _refuse(send: Callable, path: str, status: int, detail: str, fhir_code: str, headers: dict[str, str]) -> None:
    if path.startswith("/fhir"):
        body, ctype = operation_outcome(detail, fhir_code, ""), "application/fhir+json"
    else:
        body, ctype = {"detail": detail}, "application/json"
    raw = json.dumps(body).encode()
    head = [(b"content-type", ctype.encode()), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def _audit_failed(err: AuditUnavailable, entry: dict[str, Any]) -> None:
    log.error("audit record not written", extra={"action": entry["action"], "audit_error": str(err)[:300]})
