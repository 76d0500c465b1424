"""`radflow dev` keeps PHI out of Temporal in clear, and still shows it to the API and the UI.

A real `radflow dev` subprocess (real ports, the Temporal dev server's SQLite file): after
an order and its report whose patient name, MRN and report text are unique strings,
neither the database file nor `temporal workflow show` holds them, while the API and the
codec server (called the way the Temporal UI's browser calls it) give them back. A restart
reuses the generated keys: the same order still reads.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from radflow.domain.definitions import order_workflow_id
from radflow.devstack import find_binary, free_port
from radflow.infra.mllp_client import send_messages
from tests.radflow.hl7_messages import orm_nw, oru
from tests.radflow.test_dev_command import _wait_healthy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


async def _start_dev(data: Path, ports: dict[str, int]) -> tuple[asyncio.subprocess.Process, list[str], asyncio.Task]:
    cmd = [sys.executable, "-m", "radflow", "dev", "--data-dir", str(data),
           "--temporal-port", str(ports["temporal"]), "--ui-port", str(ports["ui"]),
           "--mllp-port", str(ports["mllp"]), "--api-port", str(ports["api"])]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=os.environ | {"RADFLOW_LOG_LEVEL": "INFO"})
    output: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line.decode(errors="replace"))

    return proc, output, asyncio.create_task(read())


async def _stop(proc: asyncio.subprocess.Process, reader: asyncio.Task) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        return await asyncio.wait_for(proc.wait(), timeout=45)
    except TimeoutError:
        proc.kill()
        raise
    finally:
        await reader


def _database_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data.glob("temporal.db*")))


async def _eventually(fn, ok, timeout_s: float = 30.0):  # noqa: ANN001, ANN202
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await fn()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.3)


async def test_phi_is_encrypted_in_temporal_and_decoded_for_the_api_and_ui(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10].upper()
    name, mrn, report = f"Zqname{tag}", f"MZ{tag}", f"Findingtext{tag}"
    acc = f"E{tag}"
    data = tmp_path / "data"
    ports = {k: free_port() for k in ("temporal", "ui", "mllp", "api")}
    api = f"http://127.0.0.1:{ports['api']}"
    ui_origin = f"http://127.0.0.1:{ports['ui']}"
    proc, output, reader = await _start_dev(data, ports)
    try:
        await _wait_healthy(f"{api}/healthz", proc)
        assert "Payloads encrypted" in "".join(output) and f"{api}/codec" in "".join(output)
        for path in (data / "codec-keys", data / "search-hmac.key"):
            assert path.stat().st_mode & 0o077 == 0, path
        messages = [orm_nw(acc, mrn, f"NW-{tag}"), oru(acc, mrn, "F", f"RF-{tag}", text=report)]
        acks = await send_messages("127.0.0.1", ports["mllp"], [m.replace("Testpatient^Beta", f"{name}^Quorra").encode()
                                                                for m in messages])
        assert all(b"MSA|AA" in a for a in acks), acks
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            order = (await http.get(f"/orders/{acc}")).json()
            assert order["patient"]["mrn"] == mrn and name in order["patient"]["name"]
            assert order["report_status"] == "final"
            timeline = await http.get(f"/orders/{acc}/timeline")
            assert timeline.status_code == 200 and len(timeline.json()["entries"]) >= 2
            # The PatientID search attribute is a keyed hash; searching by MRN hashes the query the same way.
            found = await _eventually(lambda: http.get("/orders", params={"patient": mrn}),
                                      lambda r: r.status_code == 200 and r.json()["orders"])
            assert [o["accession"] for o in found.json()["orders"]] == [acc]
            assert found.json()["orders"][0]["patient_id"] == mrn

            # What Temporal holds: `temporal workflow show` and the database file.
            shown = subprocess.run([find_binary("temporal"), "workflow", "show", "--address", f"127.0.0.1:{ports['temporal']}",
                                    "--workflow-id", order_workflow_id(acc), "--output", "json"],
                                   capture_output=True, text=True, timeout=60, check=True).stdout
            assert base64.b64encode(b"binary/encrypted").decode() in shown  # the history's payloads are sealed
            for secret in (name, mrn, report):
                assert secret not in shown, secret
            described = subprocess.run([find_binary("temporal"), "workflow", "describe", "--address",
                                        f"127.0.0.1:{ports['temporal']}", "--workflow-id", order_workflow_id(acc),
                                        "--output", "json"], capture_output=True, text=True, timeout=60, check=True).stdout
            assert "PatientID" in described and mrn not in described
            # The order's read model (its memo, what GET /orders/{accession} serves) is sealed like the history.
            memo = json.loads(described)["workflowExecutionInfo"]["memo"]["fields"]["order"]
            assert base64.b64decode(memo["metadata"]["encoding"]) == b"binary/encrypted"
            for secret in (name, mrn):
                assert secret not in described and secret.encode() not in base64.b64decode(memo["data"]), secret
            assert order["read"]["consistency"] == "eventual"  # the API read above came from that memo
            db = _database_bytes(data)
            assert acc.encode() in db  # the search can see clear strings in this file...
            for secret in (name, mrn, report):
                assert secret.encode() not in db, secret  # ...and these are not among them

            # The codec server, as the UI's browser calls it: preflight from the UI origin, then decode.
            preflight = await http.options("/codec/decode", headers={
                "Origin": ui_origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace"})
            assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ui_origin
            found = _history_payloads(json.loads(shown))
            plain = [(path, base64.b64decode(p["data"])[:200]) for path, p in found
                     if base64.b64decode(p["metadata"].get("encoding", "")) != b"binary/encrypted"]
            assert found and all(path in SDK_MARKER_DETAILS for path, _ in plain), plain
            payloads = [p for path, p in found if path not in SDK_MARKER_DETAILS]
            decoded = await http.post("/codec/decode", json={"payloads": payloads},
                                      headers={"Origin": ui_origin, "X-Namespace": "default"})
            assert decoded.status_code == 200 and decoded.headers["access-control-allow-origin"] == ui_origin
            clear = b"".join(base64.b64decode(p["data"]) for p in decoded.json()["payloads"])
            for secret in (name, mrn, report):
                assert secret.encode() in clear, secret
            # The UI's user metadata (the order's summary and details) is sealed too, and the codec opens it.
            metadata = [p for path, p in found if "userMetadata" in path]
            assert metadata, "no user metadata in the history"
            opened = await http.post("/codec/decode", json={"payloads": metadata}, headers={"X-Namespace": "default"})
            assert acc.encode() in b"".join(base64.b64decode(p["data"]) for p in opened.json()["payloads"])
            # The Temporal CLI through the same codec server (the operator's `temporal workflow show`).
            through = subprocess.run([find_binary("temporal"), "workflow", "show", "--address", f"127.0.0.1:{ports['temporal']}",
                                      "--workflow-id", order_workflow_id(acc), "--output", "json",
                                      "--codec-endpoint", f"{api}/codec"],
                                     capture_output=True, text=True, timeout=60, check=True).stdout
            shown_clear = b"".join(base64.b64decode(p["data"]) for _, p in _history_payloads(json.loads(through)))
            for secret in (name, mrn, report):
                assert secret.encode() in shown_clear, secret
            other = await http.post("/codec/decode", json={"payloads": payloads[:1]}, headers={"X-Namespace": "other"})
            assert other.status_code == 404
        audit = [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines()]
        assert any(e["action"] == "POST /codec/decode" and e["outcome"] == 200 for e in audit)
    finally:
        code = await _stop(proc, reader)
    assert code == 0, "".join(output)[-3000:]

    # Restart: the generated keys are reused, so the order written before still decrypts.
    keys_before = (data / "codec-keys").read_text()
    proc, output, reader = await _start_dev(data, ports)
    try:
        await _wait_healthy(f"{api}/healthz", proc)
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            again = await http.get(f"/orders/{acc}")
            assert again.status_code == 200 and again.json()["patient"]["mrn"] == mrn
    finally:
        code = await _stop(proc, reader)
    assert code == 0, "".join(output)[-3000:]
    assert (data / "codec-keys").read_text() == keys_before


def _history_payloads(history: dict) -> list[tuple[str, dict]]:
    """(path, payload) of every payload in the history's events but search attributes, in the
    JSON shape the UI sends."""
    found: list[tuple[str, dict]] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if "metadata" in node and "data" in node and isinstance(node.get("metadata"), dict):
                found.append((path, {"metadata": node["metadata"], "data": node["data"]}))
                return
            for key, value in node.items():
                if key != "searchAttributes":  # indexed by the server in clear by design (PatientID is a hash)
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, path)

    walk(history.get("events", history), "")
    return found


# The SDK's own markers: a patch id, and a local activity's bookkeeping (type, attempt, times);
# the local activity's result beside them goes through the codec.
SDK_MARKER_DETAILS = (".markerRecordedEventAttributes.details.patch-data.payloads",
                      ".markerRecordedEventAttributes.details.data.payloads")
