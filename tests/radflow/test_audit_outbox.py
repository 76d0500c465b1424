"""The AuditEvent outbox against the real FHIR test server: order, idempotence, refusals kept."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from radflow.domain.fhir.config import FhirMappingConfig
from radflow.infra.audit_outbox import AuditOutbox
from radflow.infra.audit_trail import AuditTrail
from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401


async def test_lines_are_delivered_once_and_unreadable_ones_are_kept_aside(fhir_server: FhirTestServer, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path, fsync=False)
    first = trail.record(who="codec", action="decode payloads", outcome=200, order="ACC9", source="10.0.0.7")
    with open(path, "ab") as f:
        f.write(b"{not json\n")
    last = trail.record(who="codec", action="decode payloads", outcome=403, source="10.0.0.7")
    outbox = AuditOutbox(path, fhir_server.base_url, FhirMappingConfig())
    assert await outbox.deliver_pending() == 3
    outbox._save_cursor(0)  # as if the process died before saving its cursor: delivered again...
    assert await outbox.deliver_pending() == 3
    async with httpx.AsyncClient(base_url=fhir_server.base_url + "/") as http:
        found = (await http.get("AuditEvent", params={"address": "10.0.0.7"})).json()
    ids = sorted(e["resource"]["id"] for e in found["entry"])
    assert ids == sorted([first["id"], last["id"]])  # ...and stored once (PUT by the line's id)
    rejected = [json.loads(line) for line in (tmp_path / "audit.jsonl.rejected").read_text().splitlines()]
    assert [r["line"] for r in rejected] == ["{not json", "{not json"] and "not an audit line" in rejected[0]["reason"]
    assert int((tmp_path / "audit.jsonl.cursor").read_text()) == path.stat().st_size
