"""The AE itself: C-ECHO (DCMTK echoscu), calling-AE allow-list, TCP_NODELAY, bad C-FIND identifiers."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification
from temporalio.client import Client

from radflow.gateways.dicom.server import DicomGateway
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.gateways.dicom.dcmtk import echoscu, require_dcmtk

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(client: Client, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[DicomGateway]:
    require_dcmtk()
    allowed = getattr(request, "param", [])
    settings = Settings(data_dir=tmp_path, dicom_host="127.0.0.1", dicom_port=0, dicom_allowed_aets=allowed)
    gw = DicomGateway(settings, OrderService(client))
    await gw.start()
    yield gw
    await gw.stop()


def _find(port: int, identifier: Dataset) -> list[tuple[int, Dataset | None]]:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADFLOW")
    assert assoc.is_established
    try:
        return [(int(status.Status), ds) for status, ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind)]
    finally:
        assoc.release()


async def test_echoscu_gets_success(gateway: DicomGateway) -> None:
    code, output = await echoscu(gateway.port)
    assert code == 0, output
    assert "Received Echo Response (Success)" in output


@pytest.mark.parametrize("gateway", [["MODALITY1", "CT01"]], indirect=True)
async def test_allow_list_rejects_unknown_calling_ae_with_reason(gateway: DicomGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="radflow.dicom")
    code, output = await echoscu(gateway.port, aet="INTRUDER")
    assert code != 0
    assert "Association Rejected" in output and "Calling AE Title Not Recognized" in output, output
    assert any("calling AE title not recognised" in r.getMessage() and getattr(r, "calling_ae", "") == "INTRUDER"
               for r in caplog.records)
    code, output = await echoscu(gateway.port, aet="CT01")
    assert code == 0 and "Success" in output, output


async def test_accepted_sockets_have_nodelay(gateway: DicomGateway) -> None:
    def associate_and_probe() -> int:
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", gateway.port, ae_title="RADFLOW")
        assert assoc.is_established
        try:
            assert gateway.ae is not None
            server_side = [a for a in gateway.ae.active_associations if a.is_acceptor]
            assert server_side, "no acceptor association"
            sock = server_side[0].dul.socket.socket
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            assoc.release()

    assert await asyncio.to_thread(associate_and_probe) != 0


async def test_malformed_identifier_gets_failure_status_not_a_crash(gateway: DicomGateway) -> None:
    bad_date = Dataset()
    bad_date.AccessionNumber = ""
    sps = Dataset()
    sps.ScheduledProcedureStepStartDate = "last week"
    bad_date.ScheduledProcedureStepSequence = [sps]
    answers = await asyncio.to_thread(_find, gateway.port, bad_date)
    assert [status for status, _ in answers] == [0xA900]

    two_items = Dataset()
    two_items.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    answers = await asyncio.to_thread(_find, gateway.port, two_items)
    assert [status for status, _ in answers] == [0xA900]

    # The AE still serves after refusing.
    code, output = await echoscu(gateway.port)
    assert code == 0, output


async def test_unsupported_keys_answer_pending_with_warning(gateway: DicomGateway) -> None:
    from datetime import UTC, datetime

    from radflow.domain.definitions import OrderStatus
    from radflow.domain.dicom.mwl import entry_from_state
    from radflow.domain.order import OrderState
    from tests.factories import make_order

    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    gateway.worklist_store.apply(entry_from_state(OrderState(order=make_order("UNSUP1"), status=OrderStatus.SCHEDULED,
                                                             created_at=t0, updated_at=t0)))
    query = Dataset()
    query.AccessionNumber = "UNSUP1"
    query.add_new(0x00991010, "LO", "")  # private key radflow cannot answer
    answers = await asyncio.to_thread(_find, gateway.port, query)
    assert [status for status, _ in answers] == [0xFF01, 0x0000]
    assert answers[0][1] is not None and answers[0][1].AccessionNumber == "UNSUP1"


async def test_no_patient_data_in_info_logs(gateway: DicomGateway, caplog: pytest.LogCaptureFixture) -> None:
    from datetime import UTC, datetime

    from radflow.domain.definitions import OrderStatus
    from radflow.domain.dicom.mwl import entry_from_state
    from radflow.domain.order import OrderState, PersonName
    from tests.factories import make_order

    order = make_order("PHI1", mrn="MRN-SECRET-7")
    order.patient.name = PersonName(family="Secretname", given="Hidden")
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    gateway.worklist_store.apply(entry_from_state(OrderState(order=order, status=OrderStatus.SCHEDULED, created_at=t0,
                                                             updated_at=t0)))
    caplog.set_level(logging.INFO)
    query = Dataset()
    query.PatientName = "Secretname*"
    query.PatientID = ""
    answers = await asyncio.to_thread(_find, gateway.port, query)
    assert answers[0][1] is not None and answers[0][1].PatientID == "MRN-SECRET-7"
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records if r.levelno >= logging.INFO)
    assert "MWL query answered" in text
    assert "Secretname" not in text and "MRN-SECRET-7" not in text
