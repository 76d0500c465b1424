"""Every route of the app × every role -> 401 / 403 / through to the handler, on the real stack.

The table is built from the app's own routes: a route added without an entry in
api/policy.py fails here (and the guard refuses it to everyone but admin).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.api.auth import Role
from radflow.api.policy import POLICY, PUBLIC, STATE_CHANGING
from radflow.domain.definitions import EventSource
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.factories import make_order

SECRETS = {name: f"{name}-secret-{'x' * 20}" for name in ("reader", "operator", "intake", "admin")}
KEYS = ",".join(f"{name}-client:{name}:{secret}" for name, secret in SECRETS.items())
BODIES = {
    "/orders/{accession}/schedule": {"station_ae": "CT1", "start": "2030-01-01T10:00:00Z"},
    "/orders/{accession}/cancel": {"reason": "auth table"},
    "/orders/{accession}/link-study": {"study_instance_uid": "1.2.3.999"},
    "/fhir/ServiceRequest": {"resourceType": "ServiceRequest"},
    "/fhir/ServiceRequest/{id}": {"resourceType": "ServiceRequest"},
}


def app_routes(app) -> list[tuple[str, str]]:  # noqa: ANN001
    """(method, path template) of every route the app serves, from the app itself."""
    found = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    found |= {(m, r.path) for r in app.router.routes if hasattr(r, "path") and hasattr(r, "methods")
              for m in r.methods if m != "HEAD"}
    return sorted(found)


@pytest.fixture
async def secured(service: OrderService, settings: Settings, worker: None) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(KEYS)}), service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        yield http, app


def test_every_route_has_a_policy(settings: Settings) -> None:
    routes = app_routes(create_app(settings, audit=False))
    assert len(routes) >= 20
    missing = [r for r in routes if r not in POLICY]
    assert not missing, f"routes without an entry in api/policy.py: {missing}"


async def test_route_role_table(secured: tuple[httpx.AsyncClient, object], service: OrderService) -> None:
    http, app = secured
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    callers: dict[str, dict[str, str]] = {
        "nobody": {},
        "bad-token": {"Authorization": "Bearer not-a-configured-key-000000"},
        "not-bearer": {"Authorization": f"Basic {SECRETS['admin']}"},
        **{name: {"Authorization": f"Bearer {secret}"} for name, secret in SECRETS.items()},
    }
    table: list[tuple[str, str, str, int]] = []
    for method, template in app_routes(app):
        need = POLICY[(method, template)]
        path = re.sub(r"\{(\w+)\}", lambda m: {"kind": "study", "key": "1.2.3.999"}.get(m.group(1), order.accession), template)
        for caller, headers in callers.items():
            kwargs = {"json": BODIES.get(template, {})} if method in STATE_CHANGING else {}
            resp = await http.request(method, path, headers=headers, **kwargs)
            table.append((method, template, caller, resp.status_code))
            if need == PUBLIC:
                assert resp.status_code not in (401, 403), (method, template, caller, resp.text)
            elif caller in ("nobody", "bad-token", "not-bearer"):
                assert resp.status_code == 401, (method, template, caller, resp.text)
                assert resp.headers["www-authenticate"].startswith("Bearer")
            elif caller == "admin" or caller == Role(need).value:
                # Through the guard to the handler: 2xx for reads of a real order, the handler's
                # own answer (404 unknown study, 409 refused, 422 bad FHIR) for the rest.
                assert resp.status_code not in (401, 403, 415), (method, template, caller, resp.text)
                if method == "GET" and template.startswith(("/orders", "/exceptions")) and "{kind}" not in template:
                    assert 200 <= resp.status_code < 300, (method, template, caller, resp.text)
            else:
                assert resp.status_code == 403, (method, template, caller, resp.text)
                assert Role(need).value in resp.text
    # FHIR routes refuse in FHIR's own shape.
    fhir = [t for t in table if t[1].startswith("/fhir/ServiceRequest") and t[2] == "nobody"]
    assert fhir
    resp = await http.get(f"/fhir/ServiceRequest/{order.accession}")
    assert resp.status_code == 401 and resp.json()["resourceType"] == "OperationOutcome"
    assert resp.json()["issue"][0]["code"] == "login"


async def test_unknown_paths_need_admin(secured: tuple[httpx.AsyncClient, object]) -> None:
    http, _ = secured
    anonymous = await http.get("/no/such/path")
    reader = await http.get("/no/such/path", headers={"Authorization": f"Bearer {SECRETS['reader']}"})
    admin = await http.get("/no/such/path", headers={"Authorization": f"Bearer {SECRETS['admin']}"})
    assert (anonymous.status_code, reader.status_code, admin.status_code) == (401, 403, 404)


async def test_combined_roles_and_keys_file(service: OrderService, settings: Settings, worker: None, tmp_path) -> None:  # noqa: ANN001
    keys_file = tmp_path / "keys"
    keys_file.write_text("# integrations\nris:reader+operator:ris-secret-0123456789abcdef\n")
    app = create_app(settings.model_copy(update={"api_keys_file": keys_file}), service)
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    auth = {"Authorization": "Bearer ris-secret-0123456789abcdef"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        read = await http.get(f"/orders/{order.accession}", headers=auth)
        cancel = await http.post(f"/orders/{order.accession}/cancel", json={"reason": "x"}, headers=auth)
        intake = await http.post("/fhir/ServiceRequest", json={"resourceType": "ServiceRequest"}, headers=auth)
    assert read.status_code == 200 and cancel.status_code == 200 and cancel.json()["status"] == "CANCELLED"
    assert intake.status_code == 403
