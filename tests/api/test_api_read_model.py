"""GET /orders/{accession} from the read model: answered while the worker is stopped (issue 12 item 7).

The real session Temporal dev server, the MLLP gateway and the API (uvicorn) on real sockets;
the worker starts only halfway. Orders arrive as HL7 over TCP, reads go over HTTP.
"""

from __future__ import annotations

import json

import httpx
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.components import ApiComponent, MllpComponent, WorkerComponent
from radflow.infra.mllp_client import send_messages
from radflow.service.wiring import order_service
from tests.radflow.hl7_messages import orm_nw, oru
from tests.stack import stack_settings
from tests.waiting import eventually


async def test_reads_come_from_the_read_model_while_the_worker_is_stopped(client: Client, task_queue: str) -> None:
    settings = stack_settings(task_queue, temporal_rpc_timeout_s=2.0)
    service = order_service(client, settings)
    gateway = MllpComponent(service, settings, "127.0.0.1", settings.mllp_port)
    api = ApiComponent(create_app(settings, service), "127.0.0.1", settings.api_port)
    worker = WorkerComponent(client, settings)
    acc, mrn = f"RM{task_queue[-8:].upper()}", f"MRM{task_queue[-6:]}"
    started = []
    try:
        for comp in (gateway, api):
            await comp.start()
            started.append(comp)
        [ack] = await send_messages("127.0.0.1", settings.mllp_port, [orm_nw(acc, mrn, f"NW-{acc}").encode()])
        assert b"MSA|AA" in ack  # a new order needs no worker: it is durable once started
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=15) as http:
            read = await http.get(f"/orders/{acc}")
            assert read.status_code == 200, read.text
            body = read.json()
            assert body["status"] == "ORDERED" and body["patient"]["mrn"] == mrn
            assert body["read"]["consistency"] == "eventual"
            assert body["read"]["history_length"] == 0  # the gateway's view, written with the start
            assert body["read"]["pending"] is True  # the order's first task waits for a worker

            # The exact read asks the workflow: no worker, no answer (503, nothing invented).
            strong = await http.get(f"/orders/{acc}", params={"consistency": "strong"})
            assert strong.status_code == 503, strong.text
            bad = await http.get(f"/orders/{acc}", params={"consistency": "sometimes"})
            assert bad.status_code == 422
            # FHIR reads of the order come from the same read model, but for the report (its text is not in it).
            fhir = await http.get(f"/fhir/ServiceRequest/{acc}")
            assert fhir.status_code == 200 and fhir.json()["identifier"], fhir.text
            assert (await http.get(f"/fhir/Task/{acc}")).status_code == 200
            assert (await http.get(f"/fhir/DiagnosticReport/{acc}")).status_code == 503
            # FHIR searches read their candidates from the read model too (DiagnosticReport: from the workflow).
            found = await http.get("/fhir/ServiceRequest", params={"identifier": acc})
            assert found.status_code == 200 and [e["resource"]["id"] for e in found.json()["entry"]] == [acc], found.text
            tasks = await http.get("/fhir/Task", params={"based-on": f"ServiceRequest/{acc}"})
            assert tasks.status_code == 200 and tasks.json()["total"] == 1, tasks.text
            reports = await http.get("/fhir/DiagnosticReport", params={"based-on": f"ServiceRequest/{acc}"})
            assert reports.status_code == 503, reports.text

            # Every PHI read is audited, read-model reads included, with the patient they showed.
            audit = [json.loads(line) for line in settings.audit_log_path().read_text().splitlines()]
            reads = [r for r in audit if r["action"] == "GET /orders/{accession}" and r["outcome"] == 200]
            assert len(reads) == 1 and reads[0]["order"] == acc and reads[0]["patient"]["value"] == mrn
            fhir_reads = [r for r in audit if r["action"] == "GET /fhir/ServiceRequest/{id}" and r["outcome"] == 200]
            assert len(fhir_reads) == 1 and fhir_reads[0]["patient"]["value"] == mrn

            await worker.start()
            started.append(worker)
            # The worker takes the order's first task: the view catches up (nothing pending).
            caught_up = await eventually(lambda: http.get(f"/orders/{acc}"), lambda r: r.json()["read"]["pending"] is False)
            assert caught_up.json()["status"] == "ORDERED"

            [ack] = await send_messages("127.0.0.1", settings.mllp_port, [oru(acc, mrn, "F", f"ORU-{acc}").encode()])
            assert b"MSA|AA" in ack
            # Read-your-writes: the view is written in the workflow task that applied the report.
            after = (await http.get(f"/orders/{acc}")).json()
            assert after["status"] == "REPORTED" and after["report_status"] == "final", after
            assert after["read"]["history_length"] > 0
            # The report delivery to the (closed) EHR port fails through its retries: the lane waits for an operator.
            stuck = await eventually(lambda: http.get(f"/orders/{acc}"),
                                     lambda r: r.json()["flags"]["needs_attention"], timeout_s=30)
            assert stuck.json()["lanes"]["hl7"]["needs_attention"] is True

            exact = await http.get(f"/orders/{acc}", params={"consistency": "strong"})
            assert exact.status_code == 200 and exact.json()["read"]["consistency"] == "strong"
            assert {k: v for k, v in exact.json().items() if k != "read"} == {
                k: v for k, v in stuck.json().items() if k != "read"}  # the view is the state, not an approximation
    finally:
        for comp in reversed(started):
            await comp.stop()
