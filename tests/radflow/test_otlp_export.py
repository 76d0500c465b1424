"""RADFLOW_OTEL_EXPORTER_OTLP_ENDPOINT: `radflow mllp` as its own process exports its spans over OTLP/HTTP
to a collector (here a loopback HTTP receiver decoding the protobuf), without PHI in them."""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from tests.radflow import procs
from tests.radflow.hl7_messages import orm_nw
from tests.waiting import eventually

pytestmark = pytest.mark.integration


class _Collector:
    def __init__(self) -> None:
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.append((self.path, request))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def spans(self) -> list[tuple[str, object]]:
        out = []
        for _, request in self.requests:
            for resource in request.resource_spans:
                service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
                out += [(service, span) for scope in resource.scope_spans for span in scope.spans]
        return out


@pytest.fixture
def collector() -> Iterator[_Collector]:
    c = _Collector()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()


async def test_mllp_process_exports_its_spans_over_otlp(dev_server: DevServer, collector: _Collector, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    acc, mrn = f"OT{tag}", f"OM{tag}"
    mllp_port, health_port = free_port(), free_port()
    env = {
        "RADFLOW_TEMPORAL_ADDRESS": dev_server.address,
        "RADFLOW_TASK_QUEUE": f"tq-otlp-{tag}",
        "RADFLOW_DATA_DIR": str(tmp_path / "data"),
        "RADFLOW_HEALTH_HOST": "127.0.0.1",
        "RADFLOW_HEALTH_PORT": str(health_port),
        "RADFLOW_OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # the SDK's batch delay, in ms (default 5 s)
    }
    proc = procs.start("mllp", env, tmp_path / "mllp.log", "--host", "127.0.0.1", "--port", str(mllp_port))
    with procs.running(proc):
        ready = await eventually(lambda: procs.get(f"http://127.0.0.1:{health_port}/readyz"),
                                 lambda r: r is not None and r.status_code == 200, timeout_s=60)
        assert ready.status_code == 200
        [ack] = await send_messages("127.0.0.1", mllp_port, [orm_nw(acc, mrn, f"NW-{tag}").encode()])
        assert b"MSA|AA" in ack

        async def names() -> set[str]:
            return {span.name for _, span in collector.spans()}

        exported = await eventually(names, lambda n: {"hl7 receive", "StartWorkflow:ImagingOrderV2"} <= n, timeout_s=30)
    assert {path for path, _ in collector.requests} == {"/v1/traces"}
    services = {service for service, _ in collector.spans()}
    assert services == {"radflow-mllp"}, services
    receipt = next(span for _, span in collector.spans() if span.name == "hl7 receive")
    start = next(span for _, span in collector.spans() if span.name == "StartWorkflow:ImagingOrderV2")
    assert start.trace_id == receipt.trace_id and start.parent_span_id == receipt.span_id, exported
    for _, span in collector.spans():
        values = " ".join(f"{a.key}={a.value}" for a in span.attributes)
        assert mrn not in values and "Testpatient" not in values, values
