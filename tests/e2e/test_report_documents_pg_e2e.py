"""Issue 12.1 end to end: report documents on PostgreSQL, the MLLP gateway and the worker on different "hosts".

The HL7 gateway and the worker have separate data directories and share nothing but Temporal and
the PostgreSQL read-model database: an ORU with an embedded PDF, acknowledged AA by the gateway,
reaches the EHR (MLLP sink) byte for byte through the worker's delivery activity on the shared
queue, and neither process wrote the document to its local disk.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import OrderStatus
from radflow.domain.hl7.mapping import map_message
from radflow.domain.hl7.parse import parse_message
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.devstack import free_port
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.e2e.fhir_helpers import Hl7Order, ack_code, send_mllp
from tests.e2e.test_report_documents_e2e import PDF, STUDY_ROW, EhrSink, ehr, oru  # noqa: F401  (fixture)
from tests.stack import stack_settings
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_pdf_written_by_the_gateway_is_delivered_by_a_worker_elsewhere(client: Client, task_queue: str,
                                                                             pg_url: str, tmp_path: Path,
                                                                             ehr: EhrSink) -> None:  # noqa: F811
    common = dict(read_model_url=pg_url, report_consumers=["hl7"], ehr_mllp_host="127.0.0.1",
                  ehr_mllp_port=ehr.port)  # type: ignore[attr-defined]
    gateway_settings = stack_settings(task_queue, data_dir=tmp_path / "mllp-host", **common)
    worker_settings = stack_settings(task_queue, data_dir=tmp_path / "worker-host", **common)
    port = free_port()
    server = await Hl7Gateway(order_service(client, gateway_settings), gateway_settings).serve(host="127.0.0.1",
                                                                                              port=port)
    try:
        async with build_worker(client, worker_settings):
            o = Hl7Order()
            assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
            message = oru(o, f"PDF{o.tag}", STUDY_ROW.replace("{uid}", o.study_uid),
                          f"OBX|{{n}}|ED|18748-4^Report PDF^LN||^AP^PDF^Base64^{base64.b64encode(PDF).decode()}||||||F")
            assert ack_code(await send_mllp(port, message)) == "AA"
            service = order_service(client, worker_settings)
            state = await eventually(lambda: service.get_state(o.accession),
                                     lambda s: s.status == OrderStatus.DELIVERED, timeout_s=60)
    finally:
        server.close()
        await server.wait_closed()
    assert state.status == OrderStatus.DELIVERED, state.timeline[-3:]
    sha = hashlib.sha256(PDF).hexdigest()
    (out,) = ehr.received
    (cmd,) = map_message(parse_message(out))
    assert cmd.documents == {sha: PDF}
    for host in ("mllp-host", "worker-host"):
        assert not (tmp_path / host / "attachments").exists()
