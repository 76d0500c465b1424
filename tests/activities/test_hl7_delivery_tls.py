"""ORU^R01 delivery to an EHR that speaks MLLP over TLS (activities/hl7_delivery.py built from settings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from radflow.activities.hl7_delivery import Hl7ReportDelivery
from radflow.domain.definitions import ErrorType
from radflow.gateways.mllp import serve_mllp
from radflow.infra.settings import Settings
from radflow.infra.tls import server_context
from tests.activities.test_hl7_delivery import FakeEhr, _request
from tests.tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_ehr(pki: Pki) -> AsyncIterator[FakeEhr]:
    """An EHR MLLP sink on TLS that wants a client certificate from the radflow CA."""
    sink = Settings(_env_file=None, mllp_tls_cert=pki.server_cert, mllp_tls_key=pki.server_key,  # type: ignore[call-arg]
                    mllp_tls_client_ca=pki.ca, mllp_tls_require_client_cert=True)
    fake = FakeEhr()
    server = await serve_mllp(fake.handle, "127.0.0.1", 0, tls=server_context(sink, "mllp"))
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()


def delivery(tmp_path: Path, port: int, **tls: object) -> Hl7ReportDelivery:
    settings = Settings(_env_file=None, data_dir=tmp_path, ehr_mllp_host="localhost", ehr_mllp_port=port,  # type: ignore[call-arg]
                        ehr_mllp_timeout_s=5.0, **tls)
    return Hl7ReportDelivery.from_settings(settings)


async def test_the_oru_reaches_a_tls_sink(tls_ehr: FakeEhr, pki: Pki, tmp_path: Path) -> None:
    activity = delivery(tmp_path, tls_ehr.port, ehr_mllp_tls_ca=pki.ca, ehr_mllp_tls_cert=pki.client_cert,
                        ehr_mllp_tls_key=pki.client_key).deliver_report_hl7
    result = await ActivityEnvironment().run(activity, _request())
    assert result.outcome == "delivered" and "ACK AA" in result.detail
    [payload] = tls_ehr.received
    assert payload.startswith(b"MSH|") and b"ORU^R01" in payload


@pytest.mark.parametrize("case", ["plain", "untrusted server", "no client certificate"])
async def test_a_tls_mismatch_is_a_retryable_failure_and_sends_nothing(tls_ehr: FakeEhr, pki: Pki, tmp_path: Path,
                                                                        case: str) -> None:
    tls = {"plain": {},
           "untrusted server": dict(ehr_mllp_tls_ca=pki.rogue_ca, ehr_mllp_tls_cert=pki.client_cert,
                                    ehr_mllp_tls_key=pki.client_key),
           "no client certificate": dict(ehr_mllp_tls_ca=pki.ca)}[case]
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(delivery(tmp_path, tls_ehr.port, **tls).deliver_report_hl7, _request())
    assert err.value.type == ErrorType.DELIVERY_FAILED and not err.value.non_retryable
    assert tls_ehr.received == []
