"""One inbound message = one trace: from the MLLP receipt of an ORU, through the order workflow, to the
span of the activity that delivers the report (real dev server, real worker, a real MLLP EHR sink);
the clients and the worker are built the production way (radflow.service.temporal.connect, build_worker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.gateways.mllp import serve_mllp
from radflow.gateways.dicom.component import DicomComponent
from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from radflow.service.temporal import connect
from tests.gateways.dicom.mpps_scu import MppsScu, in_progress
from tests.radflow.hl7_messages import orm_nw, oru
from tests.stack import running_stack, stack_settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    processor = SimpleSpanProcessor(memory)
    provider.add_span_processor(processor)
    yield memory
    memory.clear()


def _trace_of(spans: list[ReadableSpan], name: str, **attributes: str) -> int:
    found = [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, (name, attributes, [s.name for s in spans])
    return found[0].context.trace_id


async def test_one_trace_per_inbound_message_from_receipt_to_the_delivery_activity(dev_server: DevServer, task_queue: str,
                                                                     exporter: InMemorySpanExporter) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    acc, mrn = f"TR{tag}", f"TM{tag}"

    async def ehr(raw: bytes) -> bytes:
        return build_ack(AckHeader.from_text(raw.decode("utf-8")), AckCode.AA).encode("utf-8")

    ehr_server = await serve_mllp(ehr, "127.0.0.1", 0)
    settings = stack_settings(task_queue, temporal_address=dev_server.address,
                              ehr_mllp_port=ehr_server.sockets[0].getsockname()[1])
    client = await connect(settings)
    dicom_port = free_port()
    try:
        async with running_stack(client, settings) as stack:
            [ack] = await send_messages("127.0.0.1", stack.mllp_port, [orm_nw(acc, mrn, f"NW-{tag}").encode()])
            assert b"MSA|AA" in ack
            dicom = DicomComponent(stack.service, settings, "127.0.0.1", dicom_port)
            await dicom.start()
            try:
                answer = await asyncio.to_thread(MppsScu(dicom_port).create, in_progress(accession=acc, patient_id=mrn), None)
                assert answer.status == 0x0000, answer
            finally:
                await dicom.stop()
            [ack] = await send_messages("127.0.0.1", stack.mllp_port, [oru(acc, mrn, "F", f"ORU-{tag}").encode()])
            assert b"MSA|AA" in ack
            await eventually(lambda: stack.service.get_state(acc), lambda s: s.status.value == "DELIVERED", timeout_s=30)
            async with httpx.AsyncClient(base_url=stack.api_url) as http:
                # The strong read asks the workflow (a query, traced); the default read is a describe of its memo.
                assert (await http.get(f"/orders/{acc}", params={"consistency": "strong"})).status_code == 200
    finally:
        ehr_server.close()

    workflow_id = f"order-{acc}"
    spans = [s for s in exporter.get_finished_spans()
             if s.attributes.get("temporalWorkflowID", workflow_id) == workflow_id]
    orm = _trace_of(spans, "hl7 receive", **{"hl7.message_type": "ORM^O01", "hl7.ack_code": "AA"})
    report = _trace_of(spans, "hl7 receive", **{"hl7.message_type": "ORU^R01", "hl7.ack_code": "AA"})
    assert orm != report, "each inbound message starts its own trace"

    in_report_trace = {s.name for s in spans if s.context.trace_id == report}
    assert {"StartWorkflowUpdate:event", "StartActivity:deliver_report_hl7", "RunActivity:deliver_report_hl7"} <= in_report_trace, \
        sorted(in_report_trace)
    in_order_trace = {s.name for s in spans if s.context.trace_id == orm}
    assert {"StartWorkflow:ImagingOrderV2", "RunWorkflow:ImagingOrderV2"} <= in_order_trace, sorted(in_order_trace)
    assert "RunActivity:deliver_report_hl7" not in in_order_trace

    mpps = _trace_of(spans, "dicom N-CREATE", **{"dicom.status": "0x0000"})
    assert "StartWorkflowUpdate:event" in {s.name for s in spans if s.context.trace_id == mpps}
    http = _trace_of(spans, "HTTP GET /orders/{accession}", **{"http.response.status_code": 200})
    assert "QueryWorkflow:state" in {s.name for s in spans if s.context.trace_id == http}

    # No PHI in any span: neither the MRN nor the synthetic patient's name.
    for span in exporter.get_finished_spans():
        text = " ".join([span.name, *(f"{k}={v}" for k, v in (span.attributes or {}).items())])
        assert mrn not in text and "Testpatient" not in text, text
