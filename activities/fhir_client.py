"""Async FHIR R4 REST client (httpx) for delivery: upsert by business identifier.

Upsert = conditional create (`If-None-Exist: identifier=system|value`), then, when the
resource already existed with other content, a versioned update (`PUT` + `If-Match`), so
a retried activity never creates a second resource and never overwrites a change it has
not seen. Errors are typed for the workflow's retry policy: a 4xx is the server refusing
the content (non-retryable, the order needs an operator); 5xx, timeouts and connection
errors are retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from temporalio.exceptions import ApplicationError

from radflow.domain.definitions import ErrorType

FHIR_JSON = "application/fhir+json"
# Server-owned elements, ignored when deciding whether stored content differs.
_SERVER_ELEMENTS = ("id", "meta", "text")
# 4xx answers that say "later", not "never".
_RETRYABLE_4XX = {408, 409, 423, 425, 429}
_ETAG = re.compile(r'^(?:W/)?"([^"]+)"$')
_VERSIONED_LOCATION = re.compile(r"/([A-Za-z]+)/([^/]+)/_history/([^/]+)$")
_MAX_CONFLICTS = 3


@dataclass(frozen=True)
class Upserted:
    resource_type: str
    id: str
    version_id: str
    action: str  # "created" | "updated" | "unchanged"

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    def describe(self) -> str:
        return f"{self.reference} v{self.version_id} {self.action}"


def escape_search_value(value: str) -> str:
    """FHIR search escaping for one token part (`\\`, `,`, `$`, `|` are separators)."""
    for ch in ("\\", ",", "$", "|"):
        value = value.replace(ch, "\\" + ch)
    return value


def identifier_query(system: str, value: str) -> str:
    return f"{escape_search_value(system)}|{escape_search_value(value)}"


class FhirClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Accept": FHIR_JSON, "Prefer": "return=representation"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url + "/", headers=headers, timeout=timeout, transport=transport)

    async def __aenter__(self) -> FhirClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ upsert
    async def upsert(self, resource: dict, identifier: tuple[str, str]) -> tuple[str, str]:
        """Create or update `resource` found by `identifier`; returns (id, versionId)."""
        done = await self.put_resource(resource, identifier)
        return done.id, done.version_id

    async def ensure(self, resource: dict, identifier: tuple[str, str]) -> Upserted:
        """Create if absent, never update: for resources another system may own (Patient)."""
        return await self.put_resource(resource, identifier, update=False)

    async def put_resource(self, resource: dict, identifier: tuple[str, str], *, update: bool = True) -> Upserted:
        rtype = resource["resourceType"]
        query = urlencode({"identifier": identifier_query(*identifier)})
        body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
        resp = await self._send("POST", rtype, json_body=body, headers={"If-None-Exist": query})
        if resp.status_code == 201:
            rid, version = _id_and_version(resp, rtype)
            return Upserted(rtype, rid, version, "created")
        existing = _resource_in(resp, rtype) or await self._find_one(rtype, identifier)
        for _ in range(_MAX_CONFLICTS):
            current = Upserted(rtype, existing["id"], _version_of(existing), "unchanged")
            if not update or same_content(existing, body):
                return current
            resp = await self._send(
                "PUT",
                f"{rtype}/{current.id}",
                json_body={**body, "id": current.id},
                headers={"If-Match": f'W/"{current.version_id}"'},
                conflict_ok=True,
            )
            if resp.status_code != 412:
                rid, version = _id_and_version(resp, rtype, current.id)
                return Upserted(rtype, rid, version, "updated")
            existing = await self.read(rtype, current.id)  # changed under us: compare again
        raise ApplicationError(
            f"FHIR {rtype}/{existing['id']} kept changing during update (412 x{_MAX_CONFLICTS})",
            type=ErrorType.DELIVERY_FAILED,
        )

    async def amend(self, resource_type: str, identifier: tuple[str, str], change: Callable[[dict | None], dict]) -> Upserted:
        """Rewrite the resource found by `identifier` as `change(stored)` (versioned update),
        or create `change(None)` when there is none; unchanged when the result is the same."""
        for _ in range(_MAX_CONFLICTS):
            found = await self.search_by_identifier(resource_type, identifier)
            if len(found) > 1:
                await self._find_one(resource_type, identifier)  # raises: ambiguous identifier
            if not found:
                return await self.put_resource(change(None), identifier, update=False)
            existing = found[0]
            wanted = change(existing)
            current = Upserted(resource_type, existing["id"], _version_of(existing), "unchanged")
            if same_content(existing, wanted):
                return current
            resp = await self._send(
                "PUT", f"{resource_type}/{current.id}", json_body={**wanted, "id": current.id},
                headers={"If-Match": f'W/"{current.version_id}"'}, conflict_ok=True,
            )
            if resp.status_code != 412:
                rid, version = _id_and_version(resp, resource_type, current.id)
                return Upserted(resource_type, rid, version, "updated")
        raise ApplicationError(
            f"FHIR {resource_type} {identifier[1]} kept changing during update (412 x{_MAX_CONFLICTS})",
            type=ErrorType.DELIVERY_FAILED,
        )

    # ------------------------------------------------------------------ reads
    async def read(self, resource_type: str, rid: str) -> dict:
        return (await self._send("GET", f"{resource_type}/{rid}")).json()

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict]:
        bundle = (await self._send("GET", resource_type, params=params)).json()
        return [e["resource"] for e in bundle.get("entry") or [] if e.get("resource", {}).get("resourceType") == resource_type]

    async def search_by_identifier(self, resource_type: str, identifier: tuple[str, str]) -> list[dict]:
        return await self.search(resource_type, {"identifier": identifier_query(*identifier)})

    async def _find_one(self, rtype: str, identifier: tuple[str, str]) -> dict:
        found = await self.search_by_identifier(rtype, identifier)
        if len(found) != 1:
            raise ApplicationError(
                f"FHIR {rtype} identifier {identifier[0]}|{identifier[1]} matches {len(found)} resources",
                type=ErrorType.DELIVERY_REJECTED,
                non_retryable=True,
            )
        return found[0]

    # ------------------------------------------------------------------ transport
    async def _send(self, method: str, path: str, *, json_body: dict | None = None, params: dict | None = None,
                    headers: dict | None = None, conflict_ok: bool = False) -> httpx.Response:
        hdrs = dict(headers or {})
        content = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            hdrs["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
        try:
            resp = await self._http.request(method, path, content=content, params=params, headers=hdrs)
        except httpx.TimeoutException as err:
            raise ApplicationError(f"FHIR {method} {path}: timeout ({type(err).__name__}) at {self.base_url}",
                                   type=ErrorType.DELIVERY_FAILED) from err
        except httpx.TransportError as err:
            raise ApplicationError(f"FHIR {method} {path}: {type(err).__name__} {err} at {self.base_url}",
                                   type=ErrorType.DELIVERY_FAILED) from err
        if resp.is_success or (conflict_ok and resp.status_code == 412):
            return resp
        reason = f"FHIR {method} {path} -> HTTP {resp.status_code}: {outcome_text(resp)}"
        if 400 <= resp.status_code < 500 and resp.status_code not in _RETRYABLE_4XX:
            raise ApplicationError(reason, type=ErrorType.DELIVERY_REJECTED, non_retryable=True)
        raise ApplicationError(reason, type=ErrorType.DELIVERY_FAILED)


def outcome_text(resp: httpx.Response) -> str:
    """The server's own words: OperationOutcome diagnostics/details, else the body's start."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in body.get("issue") or []:
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code", "")
            where = ", ".join(issue.get("expression") or issue.get("location") or [])
            parts.append(f"{text} ({where})" if where else text)
        return "; ".join(p for p in parts if p) or "OperationOutcome without issues"
    return json.dumps(body)[:300]


def same_content(stored: dict, wanted: dict) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k not in _SERVER_ELEMENTS}  # noqa: E731
    return strip(stored) == strip(wanted)


def _resource_in(resp: httpx.Response, rtype: str) -> dict | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("resourceType") == rtype and body.get("id"):
        return body
    return None


def _version_of(resource: dict) -> str:
    return str((resource.get("meta") or {}).get("versionId") or "")


def _id_and_version(resp: httpx.Response, rtype: str, rid: str = "") -> tuple[str, str]:
    """From the body (Prefer: return=representation), else from Location / ETag headers."""
    body = _resource_in(resp, rtype)
    if body is not None and _version_of(body):
        return body["id"], _version_of(body)
    location = _VERSIONED_LOCATION.search(resp.headers.get("location", "").split("?")[0])
    if location:
        return location.group(2), location.group(3)
    etag = _ETAG.match(resp.headers.get("etag", "").strip())
    rid = (body or {}).get("id") or rid
    if rid and etag:
        return rid, etag.group(1)
    raise ApplicationError(f"FHIR {rtype} write answered without id/version (HTTP {resp.status_code})",
                           type=ErrorType.DELIVERY_REJECTED, non_retryable=True)
