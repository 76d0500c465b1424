"""Hostile C-FIND identifiers: no pattern can stall the gateway, oversized ones are refused with a reason,
and a query that runs past its time budget ends with a failure status (issue 8, DICOM part of items 1 and 6).

Real DCMTK findscu/echoscu against the DicomGateway on loopback; the worklist read model is filled directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind
from temporalio.client import Client

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.matching import MAX_PATTERN_CHARS, MAX_WILDCARDS
from radflow.domain.dicom.mwl import entry_from_state
from radflow.domain.order import OrderState, PersonName
from radflow.gateways.dicom.server import DicomGateway
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.factories import make_order
from tests.gateways.dicom.dcmtk import echoscu, findscu, require_dcmtk

pytestmark = pytest.mark.integration

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def fill(gateway: DicomGateway, count: int, prefix: str) -> None:
    entries = []
    for i in range(count):
        order = make_order(f"{prefix}{i:05d}", mrn=f"M{prefix}{i:05d}")
        order.patient.name = PersonName(family=f"Testperson{i:05d}", given="Alexandra-Maria")
        entries.append(entry_from_state(OrderState(order=order, status=OrderStatus.SCHEDULED, created_at=T0, updated_at=T0)))
    gateway.worklist_store.apply_many(entries)


@pytest.fixture
async def gateway(client: Client, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[DicomGateway]:
    require_dcmtk()
    overrides = getattr(request, "param", {})
    settings = Settings(data_dir=tmp_path, dicom_host="127.0.0.1", dicom_port=0, **overrides)
    gw = DicomGateway(settings, OrderService(client))
    await gw.start()
    yield gw
    await gw.stop()


def _find(port: int, identifier: Dataset) -> list[tuple[int, str, Dataset | None]]:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADFLOW")
    assert assoc.is_established
    try:
        return [(int(st.Status), str(st.get("ErrorComment", "")), ds)
                for st, ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind)]
    finally:
        assoc.release()


async def test_star_pattern_is_linear_and_other_associations_proceed(gateway: DicomGateway) -> None:
    # Before: `**********Z` became `.*.*.*.*.*.*.*.*.*.*Z` under re.fullmatch, which backtracks
    # exponentially while holding the GIL: this findscu ran for minutes and echoscu could not associate.
    fill(gateway, 300, "RD")
    started = time.monotonic()
    find = asyncio.create_task(findscu(gateway.port, ["PatientName=**********Z", "AccessionNumber"]))
    await asyncio.sleep(0.2)  # the C-FIND is being matched now (before the fix: for minutes)
    echo_started = time.monotonic()
    code, output = await asyncio.wait_for(echoscu(gateway.port, aet="CT01"), 10)
    echo_s = time.monotonic() - echo_started
    assert code == 0 and "Success" in output, output
    assert echo_s < 5, f"echoscu took {echo_s:.1f} s while a C-FIND was running"
    result = await asyncio.wait_for(find, 20)
    took = time.monotonic() - started
    assert result.returncode == 0, result.output
    assert result.responses == []
    assert took < 10, f"the C-FIND took {took:.1f} s"

    # The same matcher still finds what the pattern describes, stars in any number.
    hit = await findscu(gateway.port, ["PatientName=****test*00042*^*ALEX*", "AccessionNumber"])
    assert hit.returncode == 0, hit.output
    assert [r.AccessionNumber for r in hit.responses] == ["RD00042"]


async def test_oversized_patterns_are_refused_with_a_reason(gateway: DicomGateway) -> None:
    fill(gateway, 3, "OV")
    wild = Dataset()
    wild.PatientName = "?*" * (MAX_WILDCARDS // 2 + 1)
    answers = await asyncio.to_thread(_find, gateway.port, wild)
    assert [(status, comment[:18]) for status, comment, _ in answers] == [(0xC002, "query too complex:")]
    assert "wildcards" in answers[0][1]

    long = Dataset()
    long.AccessionNumber = "A" * (MAX_PATTERN_CHARS + 1)
    answers = await asyncio.to_thread(_find, gateway.port, long)
    assert [status for status, _, _ in answers] == [0xC002]
    assert "longer than" in answers[0][1]

    many = Dataset()
    many.Modality = [f"M{i}" for i in range(40)]
    answers = await asyncio.to_thread(_find, gateway.port, many)
    assert [status for status, _, _ in answers] == [0xC002]

    # Under the caps, stars are fine however many: runs of `*` count once.
    ok = Dataset()
    ok.PatientName = "*" * 40 + "Testperson00001*"
    ok.AccessionNumber = ""
    answers = await asyncio.to_thread(_find, gateway.port, ok)
    assert [status for status, _, _ in answers] == [0xFF00, 0x0000]
    assert answers[0][2] is not None and answers[0][2].AccessionNumber == "OV00001"


@pytest.mark.parametrize("gateway", [{"mwl_query_budget_s": 0.01}], indirect=True)
async def test_query_past_its_time_budget_ends_with_a_failure_status(gateway: DicomGateway) -> None:
    fill(gateway, 4000, "BU")
    scan_all = Dataset()
    scan_all.PatientName = "*Nobody*"  # not indexable: every row is looked at
    answers = await asyncio.to_thread(_find, gateway.port, scan_all)
    assert [status for status, _, _ in answers] == [0xA700], answers
    assert "time budget" in answers[0][1]
    # The association and the AE keep serving.
    code, output = await echoscu(gateway.port)
    assert code == 0, output


async def test_refusal_logs_name_the_key_never_the_value(gateway: DicomGateway, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="radflow.dicom.mwl")
    bad = Dataset()
    bad.PatientBirthDate = "19800231x"  # a birth date: PHI, and not a DICOM date
    bad.PatientName = "Secretname*"
    answers = await asyncio.to_thread(_find, gateway.port, bad)
    assert [status for status, _, _ in answers] == [0xA900]
    assert "19800231x" in answers[0][1]  # the peer is told what was wrong with its own query
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "MWL query refused: PatientBirthDate" in logged
    assert "19800231" not in logged and "Secretname" not in logged


async def test_invalid_values_from_peers_are_not_echoed_to_stderr_warnings(gateway: DicomGateway) -> None:
    import warnings

    from pydicom.dataset import Dataset as Ds
    from pynetdicom.dsutils import decode, encode

    bad = Ds()
    bad.PatientBirthDate = "19800231x"
    raw = encode(bad, False, True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        decoded = decode(__import__("io").BytesIO(raw), False, True)
        assert decoded.PatientBirthDate == "19800231x"  # the gateway reads it (and refuses the query later)
    assert not [w for w in seen if "19800231" in str(w.message)]


async def test_a_reason_quoting_non_ascii_input_still_reaches_the_peer(gateway: DicomGateway) -> None:
    bad = Dataset()
    bad.SpecificCharacterSet = "ISO_IR 192"
    sps = Dataset()
    sps.ScheduledProcedureStepStartDate = "2030°01°01"
    bad.ScheduledProcedureStepSequence = [sps]
    answers = await asyncio.to_thread(_find, gateway.port, bad)
    assert [status for status, _, _ in answers] == [0xA900]
    assert "ScheduledProcedureStepStartDate" in answers[0][1] and answers[0][1].isascii()
