"""The audit trail on the real stack: JSON lines, AuditEvents on the real FHIR test server
(Medplum engine, tests/fhir_server), the outbox surviving the server's absence, operator
identity on the timeline, and what happens when the trail cannot be written."""

from __future__ import annotations

import asyncio
import json
import os
import contextlib
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.order import EventKind
from radflow.components import ApiComponent
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.api.fhir_stack import IDENT_BASE, FhirStack, fhir_stack  # noqa: F401 (fixture)
from tests.api.test_fhir_api_intake import service_request
from tests.factories import event, make_order, report
from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401
from tests.waiting import eventually

READER = "reader-secret-0123456789abcdef"
OPERATOR = "operator-secret-0123456789abcdef"
KEYS = f"ward-viewer:reader:{READER},ops-jane:operator+reader:{OPERATOR}"
AS_READER = {"Authorization": f"Bearer {READER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}


@contextlib.asynccontextmanager
async def serve(app) -> AsyncIterator[str]:
    """The API served the way `radflow api` serves it (radflow/components.py), on loopback."""
    component = ApiComponent(app, "127.0.0.1", free_port())
    await component.start()
    try:
        yield f"http://127.0.0.1:{component.port}"
    finally:
        await component.stop()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def audited(settings: Settings, tmp: Path, fhir: FhirTestServer | None = None, **more) -> Settings:
    update = {"api_keys": SecretStr(KEYS), "audit_log": tmp / "audit" / "api.jsonl", "api_trusted_proxies": ["127.0.0.1"],
              "audit_fhir_poll_s": 0.2, "audit_fhir_backoff_max_s": 0.5, **more}
    if fhir is not None:
        update["audit_fhir_base_url"] = fhir.base_url
    return settings.model_copy(update=update)


async def audit_events(fhir: FhirTestServer, **params: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=fhir.base_url + "/") as http:
        bundle = (await http.get("AuditEvent", params={**params, "_count": "100"})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def test_a_read_and_a_retry_become_json_lines_and_audit_events(
    service: OrderService, settings: Settings, worker: None, fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    cfg = audited(settings, tmp_path, fhir_server)
    order = make_order()
    acc = order.accession
    await service.start_order(order, EventSource.HL7)
    await service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    await eventually(lambda: service.get_state(acc), lambda s: s.needs_attention, timeout_s=20)
    via_proxy = {"X-Forwarded-For": "10.1.2.3", "X-Radflow-Client-User": "jdoe"}
    async with serve(create_app(cfg, service)) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
        read = await http.get(f"/orders/{acc}", headers=AS_READER | via_proxy)
        refused = await http.post(f"/orders/{acc}/retry", json={"note": "EHR back?"}, headers=AS_READER | via_proxy)
        retried = await http.post(f"/orders/{acc}/retry", json={"note": "EHR back?"}, headers=AS_OPERATOR | via_proxy)
        anonymous = await http.get(f"/orders/{acc}/timeline", params={"limit": 5}, headers=via_proxy)
        timeline = await http.get(f"/orders/{acc}/timeline", headers=AS_OPERATOR | via_proxy)
        health = await http.get("/healthz")
        records = lines(cfg.audit_log_path())
        # The outbox delivers while the API runs: every outcome line becomes one AuditEvent.
        outcomes = [r for r in records if r.get("phase") != "attempt"]
        events = await eventually(lambda: audit_events(fhir_server, address="10.1.2.3"),
                                  lambda found: len(found) >= len(outcomes), timeout_s=20)
    assert [r.status_code for r in (read, refused, retried, anonymous, timeline)] == [200, 403, 200, 401, 200]
    assert health.status_code in (200, 503)

    for r in records:
        assert r["time"].endswith("+00:00") and r["order"] == acc
        assert (r["source"], r.get("peer")) == ("10.1.2.3", "127.0.0.1"), r  # X-Forwarded-For from a trusted proxy
    assert [(r["who"], r["roles"], r["action"], r["interaction"], r.get("phase"), r["outcome"]) for r in records] == [
        ("ward-viewer", ["reader"], "GET /orders/{accession}", "read", None, 200),
        ("ward-viewer", ["reader"], "POST /orders/{accession}/retry", "update", None, 403),
        ("ops-jane", ["operator", "reader"], "POST /orders/{accession}/retry", "update", "attempt", None),
        ("ops-jane", ["operator", "reader"], "POST /orders/{accession}/retry", "update", None, 200),
        (None, [], "GET /orders/{accession}/timeline", "read", None, 401),
        ("ops-jane", ["operator", "reader"], "GET /orders/{accession}/timeline", "read", None, 200),
    ]  # /healthz is public: not a PHI read, not audited
    assert records[3]["attempt"] == records[2]["id"]  # the change was recorded before it was applied
    assert {r["client_user"] for r in records} == {"jdoe"}
    mrn_system = FhirMappingConfig(identifier_base=cfg.fhir_identifier_base).mrn_system("HOSP")
    assert records[0]["patient"] == {"system": mrn_system, "value": order.patient.mrn}
    assert records[4]["query"] == "limit=5" and "query" not in records[0]  # searches say what was asked
    assert stat.S_IMODE(cfg.audit_log_path().stat().st_mode) == 0o600
    summaries = [e["summary"] for e in timeline.json()["entries"]]
    assert any(s.startswith("operator by ops-jane chose retry (EHR back?)") for s in summaries), summaries

    by_id = {e["id"]: e for e in events}
    assert sorted(by_id) == sorted(r["id"] for r in outcomes)
    read_ev, refused_ev, retry_ev = by_id[outcomes[0]["id"]], by_id[outcomes[1]["id"]], by_id[outcomes[2]["id"]]
    assert (read_ev["type"]["code"], read_ev["subtype"][0]["code"], read_ev["action"], read_ev["outcome"]) == ("rest", "read", "R", "0")
    assert (retry_ev["subtype"][0]["code"], retry_ev["action"], retry_ev["outcome"]) == ("update", "U", "0")
    assert (refused_ev["action"], refused_ev["outcome"]) == ("U", "4")
    client = retry_ev["agent"][0]
    assert client["requestor"] is True and client["who"]["identifier"]["value"] == "ops-jane"
    assert client["network"] == {"address": "10.1.2.3", "type": "2"} and client["altId"] == "jdoe"
    assert [r["text"] for r in client["role"]] == ["operator", "reader"]
    assert retry_ev["source"]["site"] == "radflow"
    entities = {e["role"]["code"]: e["what"] for e in read_ev["entity"]}
    assert entities["1"] == {"type": "Patient", "identifier": {"system": mrn_system, "value": order.patient.mrn}}
    assert entities["4"]["identifier"]["value"] == acc and entities["4"]["type"] == "ServiceRequest"
    assert "Testperson" not in json.dumps(events)  # identifiers only, never a name
    assert {e["id"] for e in await audit_events(fhir_server, action="U", outcome="4")} >= {refused_ev["id"]}


async def test_audit_events_wait_for_a_down_fhir_server_and_arrive_when_it_is_back(
    service: OrderService, settings: Settings, worker: None, fhir_server: FhirTestServer, tmp_path: Path
) -> None:
    cfg = audited(settings, tmp_path, fhir_server)
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    fhir_server.stop()
    try:
        async with serve(create_app(cfg, service)) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
            read = await http.get(f"/orders/{order.accession}", headers=AS_READER)
            cancel = await http.post(f"/orders/{order.accession}/cancel", json={"reason": "duplicate"}, headers=AS_OPERATOR)
            # The user's requests do not wait for or fail with the audit repository.
            assert (read.status_code, cancel.status_code) == (200, 200)
            outcome_ids = [r["id"] for r in lines(cfg.audit_log_path()) if r.get("phase") != "attempt"]
            assert len(outcome_ids) == 2
            cursor = cfg.audit_log_path().with_name("api.jsonl.cursor")
            await asyncio.sleep(1.5)  # the outbox retries meanwhile (backoff up to 0.5 s here)...
            assert not cursor.exists() or cursor.read_text() == "0"  # ...and delivers nothing
            await fhir_server.start()
            found = await eventually(lambda: audit_events(fhir_server, address="127.0.0.1"),
                                     lambda evs: set(outcome_ids) <= {e["id"] for e in evs}, timeout_s=20)
    finally:
        if not fhir_server.running:
            await fhir_server.start()
    assert set(outcome_ids) <= {e["id"] for e in found}
    assert int(cursor.read_text()) == cfg.audit_log_path().stat().st_size


async def test_when_the_trail_cannot_be_written_changes_and_reads_are_refused(
    service: OrderService, settings: Settings, worker: None, tmp_path: Path
) -> None:
    full = tmp_path / "audit" / "api.jsonl"
    full.parent.mkdir()
    os.symlink("/dev/full", full)  # every write: ENOSPC
    cfg = audited(settings, tmp_path, audit_log=full)
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    async with serve(create_app(cfg, service)) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
        cancel = await http.post(f"/orders/{order.accession}/cancel", json={"reason": "duplicate"}, headers=AS_OPERATOR)
        read = await http.get(f"/orders/{order.accession}", headers=AS_READER)
    assert cancel.status_code == 503 and "audit trail unavailable" in cancel.json()["detail"]
    assert cancel.headers["retry-after"] == "2"
    assert (await service.get_state(order.accession)).status == OrderStatus.SCHEDULED  # nothing was applied
    assert read.status_code == 503 and order.patient.mrn not in read.text  # no unrecorded PHI read


async def test_x_forwarded_for_is_ignored_from_untrusted_peers(
    service: OrderService, settings: Settings, tmp_path: Path
) -> None:
    cfg = audited(settings, tmp_path, api_trusted_proxies=["10.9.0.0/16"])
    async with serve(create_app(cfg, service)) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
        await http.get("/orders/ACC-NONE", headers=AS_READER | {"X-Forwarded-For": "10.1.2.3"})
    (record,) = lines(cfg.audit_log_path())
    assert record["source"] == "127.0.0.1" and "peer" not in record


async def test_a_cancel_names_its_operator(service: OrderService, settings: Settings, worker: None) -> None:
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(f"ops-jane:operator+reader:{OPERATOR}")}), service)
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        cancel = await http.post(f"/orders/{order.accession}/cancel", json={"reason": "duplicate"}, headers=AS_OPERATOR)
        entries = (await http.get(f"/orders/{order.accession}/timeline", headers=AS_OPERATOR)).json()["entries"]
    assert cancel.status_code == 200
    assert [e["summary"] for e in entries if e["kind"] == "CANCEL"] == ["cancelled: duplicate by ops-jane"]


async def test_a_fhir_intake_names_the_order_and_patient_it_created(fhir_stack: FhirStack) -> None:
    mrn = "M" + uuid.uuid4().hex[:8].upper()
    resp = await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(placer="PL" + mrn, mrn=mrn),
                                      headers={"Content-Type": "application/fhir+json"})
    assert resp.status_code == 201, resp.text
    attempt, done = lines(fhir_stack.settings.audit_log_path())
    assert (attempt["phase"], attempt["order"], attempt["interaction"]) == ("attempt", None, "create")
    assert done["order"] == resp.json()["id"] and done["outcome"] == 201  # the accession it was given
    assert done["patient"] == {"system": f"{IDENT_BASE}/mrn/HOSP", "value": mrn}
