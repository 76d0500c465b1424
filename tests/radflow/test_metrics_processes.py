"""/metrics of the production processes after a real lifecycle: ADT + ORM over MLLP, an MPPS N-CREATE,
an ORU whose delivery fails for real (nobody listens at the EHR address), all as separate processes
(`radflow worker`, `radflow mllp`, `radflow dicom`, `radflow api`) on one Temporal dev server.
Also checks that every metric the Grafana dashboard (deploy/grafana/radflow.json) queries is scraped."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from tests.gateways.dicom.mpps_scu import MppsScu, in_progress
from tests.radflow import procs
from tests.radflow.hl7_messages import adt_a04, orm_nw, oru
from tests.waiting import eventually

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "radflow.json"


async def _scrape(port: int) -> dict:
    resp = await procs.get(f"http://127.0.0.1:{port}/metrics")
    assert resp is not None and resp.status_code == 200, resp
    return procs.samples(resp.text)


async def _ready(port: int) -> bool:
    resp = await procs.get(f"http://127.0.0.1:{port}/readyz")
    return resp is not None and resp.status_code == 200


async def test_counters_move_after_a_real_lifecycle(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    acc, mrn = f"MX{tag}", f"MM{tag}"
    server = DevServer(db_file=None, port=free_port(), ui_port=None, log_file=tmp_path / "temporal.log")
    await server.start()
    ports = {role: free_port() for role in ("worker", "mllp", "dicom", "api", "mllp_listen", "dicom_listen")}
    env = {
        "RADFLOW_TEMPORAL_ADDRESS": server.address,
        "RADFLOW_TASK_QUEUE": f"tq-metrics-{tag}",
        "RADFLOW_DATA_DIR": str(tmp_path / "data"),
        "RADFLOW_API_AUTH": "none",
        "RADFLOW_REPORT_CONSUMERS": '["hl7"]',
        "RADFLOW_SYNC_CONSUMERS": '["worklist"]',
        "RADFLOW_ACQUISITION_CONSUMERS": "[]",
        "RADFLOW_EHR_MLLP_HOST": "127.0.0.1",
        "RADFLOW_EHR_MLLP_PORT": str(free_port()),  # nobody listens: delivery fails, the lane waits for an operator
        "RADFLOW_EHR_MLLP_TIMEOUT_S": "1",
        "RADFLOW_STEP_MAX_ATTEMPTS": "2",
        "RADFLOW_STEP_INITIAL_INTERVAL_S": "0.1",
        "RADFLOW_STEP_MAX_INTERVAL_S": "0.2",
        "RADFLOW_METRICS_REFRESH_S": "0.5",
        "RADFLOW_HEALTH_HOST": "127.0.0.1",
    }
    worker = procs.start("worker", {**env, "RADFLOW_HEALTH_PORT": str(ports["worker"])}, tmp_path / "worker.log")
    mllp = procs.start("mllp", {**env, "RADFLOW_HEALTH_PORT": str(ports["mllp"])}, tmp_path / "mllp.log",
                       "--host", "127.0.0.1", "--port", str(ports["mllp_listen"]))
    dicom = procs.start("dicom", {**env, "RADFLOW_HEALTH_PORT": str(ports["dicom"])}, tmp_path / "dicom.log",
                        "--host", "127.0.0.1", "--port", str(ports["dicom_listen"]))
    api = procs.start("api", env, tmp_path / "api.log", "--host", "127.0.0.1", "--port", str(ports["api"]))
    try:
        with procs.running(worker, mllp, dicom, api):
            for role in ("worker", "mllp", "dicom", "api"):
                assert await eventually(lambda role=role: _ready(ports[role]), bool, timeout_s=60), role

            acks = await send_messages("127.0.0.1", ports["mllp_listen"], [
                adt_a04(mrn, f"ADT-{tag}").encode(), orm_nw(acc, mrn, f"NW-{tag}").encode(),
            ])
            assert all(b"MSA|AA" in a for a in acks), acks
            answer = await asyncio.to_thread(MppsScu(ports["dicom_listen"]).create, in_progress(accession=acc, patient_id=mrn), None)
            assert answer.status == 0x0000, answer
            [ack] = await send_messages("127.0.0.1", ports["mllp_listen"], [oru(acc, mrn, "F", f"ORU-{tag}").encode()])
            assert b"MSA|AA" in ack, ack

            mllp_m = await _scrape(ports["mllp"])
            for kind in ("ADT^A04", "ORM^O01", "ORU^R01"):
                assert procs.value(mllp_m, "radflow_hl7_messages_total", message_type=kind, ack_code="AA") == 1, kind
            assert procs.value(mllp_m, "radflow_hl7_ack_seconds_count", ack_code="AA") == 3
            assert procs.value(mllp_m, "radflow_orders_started_total", source="HL7", outcome="created") == 1
            assert procs.value(mllp_m, "radflow_order_transitions_total", kind="REPORT") == 1
            assert procs.value(mllp_m, "temporal_request_total") > 0  # the SDK's own, on the same endpoint

            dicom_m = await _scrape(ports["dicom"])
            assert procs.value(dicom_m, "radflow_dicom_operations_total", operation="N-CREATE", status="success") == 1
            assert procs.value(dicom_m, "radflow_order_events_total", source="DICOM", outcome="applied") == 1

            async def worker_scrape() -> dict:
                return await _scrape(ports["worker"])

            worker_m = await eventually(worker_scrape, lambda m: (
                procs.value(m, "radflow_lane_failures_total", activity="deliver_report_hl7", final="true") >= 1
                and procs.value(m, "radflow_orders_needing_attention") >= 1), timeout_s=60)
            assert procs.value(worker_m, "radflow_lane_failures_total", activity="deliver_report_hl7", final="false") >= 1
            assert procs.value(worker_m, "radflow_orders_open") >= 1
            assert procs.value(worker_m, "temporal_workflow_task_execution_latency_seconds_count") > 0
            assert procs.value(worker_m, "temporal_activity_execution_failed_total") >= 2

            # The operator skips the failed delivery through the API (its own process).
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as http:
                skipped = await http.post(f"/orders/{acc}/skip", json={"note": "EHR down, sent by fax"})
            assert skipped.status_code == 200, skipped.text
            api_m = await _scrape(ports["api"])
            assert procs.value(api_m, "radflow_operator_actions_total", action="skip", outcome="applied") == 1
            assert procs.value(api_m, "temporal_request_total") > 0
            assert procs.value(api_m, "process_resident_memory_bytes") > 0

            scraped = {name for m in (mllp_m, dicom_m, worker_m, api_m) for name, _ in m}
            queried = dashboard_metrics()
            assert queried, "the dashboard queries nothing"
            missing = {q for q in queried if not any(s == q or s.startswith(q + "_") for s in scraped)}
            assert not missing, f"dashboard queries metrics no process exposes: {sorted(missing)}"
    finally:
        server.stop()


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's PromQL expressions use."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names: set[str] = set()
    for expr in exprs:
        names |= set(re.findall(r"\b((?:radflow|temporal|process|python)_[a-z0-9_]+)", expr))
    return names
