"""An order's HL7 life over TLS on both legs: ORM and ORU arrive over mutual-TLS MLLP, the report
leaves for an EHR that itself requires radflow's client certificate. Real dev server, worker and
MLLP gateway (the components `radflow dev` runs), certificates made at test time."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.gateways.mllp import serve_mllp
from radflow.infra.mllp_client import send_messages
from radflow.infra.settings import Settings
from radflow.infra.tls import make_client_context, server_context
from tests.radflow.hl7_messages import orm_nw, oru
from tests.stack import running_stack, stack_settings
from tests.tls_certs import Pki, make_pki
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_order_and_report_over_tls_in_and_out(client: Client, task_queue: str, pki: Pki) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    acc, mrn = f"T{tag}", f"M{tag}"
    received: list[bytes] = []

    async def ehr(raw: bytes) -> bytes:
        received.append(raw)
        return build_ack(AckHeader.from_text(raw.decode("utf-8")), AckCode.AA).encode("utf-8")

    ehr_tls = server_context(Settings(_env_file=None, mllp_tls_cert=pki.server_cert, mllp_tls_key=pki.server_key,  # type: ignore[call-arg]
                                      mllp_tls_client_ca=pki.ca, mllp_tls_require_client_cert=True), "mllp")
    ehr_server = await serve_mllp(ehr, "127.0.0.1", 0, tls=ehr_tls)
    both = dict(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca, tls_require_client_cert=True)
    settings = stack_settings(
        task_queue,
        **{f"mllp_{k}": v for k, v in both.items()},
        ehr_mllp_host="localhost", ehr_mllp_port=ehr_server.sockets[0].getsockname()[1], ehr_mllp_timeout_s=5.0,
        ehr_mllp_tls_ca=pki.ca, ehr_mllp_tls_cert=pki.client_cert, ehr_mllp_tls_key=pki.client_key,
    )
    ris = make_client_context(pki.ca, pki.client_cert, pki.client_key)
    try:
        async with running_stack(client, settings, api=False) as stack:
            acks = await send_messages("127.0.0.1", stack.mllp_port, [orm_nw(acc, mrn, f"NW-{tag}").encode(),
                                                                       oru(acc, mrn, "F", f"ORU-{tag}").encode()], tls=ris)
            assert all(b"MSA|AA" in a for a in acks), acks
            state = await eventually(lambda: stack.service.get_state(acc), lambda s: s.status.value == "DELIVERED",
                                     timeout_s=30)
    finally:
        ehr_server.close()
    assert state.status.value == "DELIVERED" and state.deliveries["hl7"].startswith("v1:delivered")
    assert len(received) == 1 and acc.encode() in received[0] and b"ORU^R01" in received[0]
