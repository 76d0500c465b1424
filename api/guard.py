"""The API's front door (pure ASGI middleware): authenticate, authorise, demand JSON, audit.

It runs before routing and before a byte of the body is read, so a refused request has no
effect and learns nothing (an unknown path needs admin, so paths cannot be probed anonymously).
Routes are matched against api/policy.py's templates; a path no template matches needs admin.

State-changing requests must declare a JSON content type and carry a body: an HTML form or
`fetch` without CORS from another site can send neither `application/json` nor an
Authorization header, so a page a hospital user opens cannot act on orders (415 otherwise).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import compile_path

from api.audit import AuditLog
from api.auth import Authenticator, Principal, Role, Unauthenticated
from api.fhir_http import operation_outcome
from api.policy import POLICY, PUBLIC, STATE_CHANGING

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

PRINCIPAL_KEY = "radflow.principal"  # where the guard leaves the caller for the routes (api/deps.py)
_JSON = re.compile(r"^application/(json|[\w.+-]+\+json)\s*(;.*)?$", re.IGNORECASE)
_COMPILED = [(method, template, compile_path(template)[0], need) for (method, template), need in POLICY.items()]


def match(method: str, path: str) -> tuple[str | None, Role | str, dict[str, str]]:
    """(route template or None, what it needs, path params). Unknown paths need admin."""
    for m, template, regex, need in _COMPILED:
        if m == method and (found := regex.match(path)):
            return template, need, found.groupdict()
    return None, Role.ADMIN, {}


class Guard:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, audit: AuditLog | None) -> None:
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
        status_box = [0]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            if refusal is not None:
                await _refuse(send_status, path, *refusal)
            else:
                scope[PRINCIPAL_KEY] = principal
                await self.app(scope, receive, send_status)
        finally:
            if self.audit is not None:
                client = scope.get("client")
                self.audit.record(principal=principal, method=method, path=path, route=template, params=params,
                                  status=status_box[0] or 500, source=client[0] if client else "",
                                  query=scope.get("query_string", b"").decode("latin-1"))

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
