"""Acceptance 1: DCMTK `findscu -W` against radflow's worklist after an HL7 ORM NW over MLLP.

Real Temporal dev server, real worker (sync_worklist activity), real MLLP gateway, the
DicomGateway on a loopback port, DCMTK by absolute path.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.dicom.uids import study_uid_for_accession
from radflow.domain.order import EventKind
from tests.factories import event
from tests.gateways.dicom.dcmtk import dump2dcm, findscu, require_dcmtk
from tests.gateways.dicom.gateway_stack import DicomStack, dicom_settings, dicom_stack, orm
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SPS = "ScheduledProcedureStepSequence[0]"
RETURN_KEYS = [
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription", "ReferringPhysicianName",
    "AdmissionID", "RequestedProcedurePriority",
    f"{SPS}.Modality", f"{SPS}.ScheduledProcedureStepStartDate", f"{SPS}.ScheduledProcedureStepStartTime",
    f"{SPS}.ScheduledProcedureStepID", f"{SPS}.ScheduledProcedureStepDescription",
    f"{SPS}.ScheduledProcedureStepStatus",
]


def uniq(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8].upper()


@pytest.fixture(scope="module")
async def mwl(client: Client, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DicomStack]:
    require_dcmtk()
    settings = dicom_settings(f"tq-mwl-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("mwl"))
    async with dicom_stack(client, settings) as stack:
        yield stack


async def order_via_hl7(mwl: DicomStack, *, station: str, start: str, family: str = "Testperson", given: str = "Alex",
                        msh18: str = "", encoding: str = "latin-1") -> tuple[str, float]:
    """Send ORM NW; return the accession and the seconds from the AA until the row is on the worklist."""
    acc = uniq("A")
    ack = await mwl.send_hl7(orm(uniq("C"), accession=acc, mrn=uniq("M"), family=family, given=given, station=station,
                                 start=start, msh18=msh18, encoding=encoding))
    assert "MSA|AA" in ack, ack
    acked = time.monotonic()
    row = await eventually(lambda: _row(mwl, acc), lambda r: r is not None and r.visible, timeout_s=10, every_s=0.01)
    assert row is not None and row.visible, f"{acc} never reached the worklist"
    return acc, time.monotonic() - acked


async def _row(mwl: DicomStack, acc: str):
    return mwl.gateway.worklist_store.get(acc)


def by_station(station: str, *more: str) -> list[str]:
    return [f"{SPS}.ScheduledStationAETitle={station}", *RETURN_KEYS, *more]


async def test_hl7_order_appears_with_patient_accession_station_and_sps(mwl: DicomStack) -> None:
    station = uniq("CT")[:16]
    acc, latency = await order_via_hl7(mwl, station=station, start="20300115093000", family="Doe", given="Jane")
    print(f"HL7 AA -> worklist row: {latency * 1000:.0f} ms")
    assert latency < 1.0, f"order took {latency:.3f} s from ACK to worklist (target < 1 s)"
    found = await findscu(mwl.port, by_station(station))
    assert found.returncode == 0, found.output
    assert len(found.responses) == 1, found.output
    ds = found.responses[0]
    assert str(ds.PatientName) == "Doe^Jane" and ds.PatientID.startswith("M") and ds.IssuerOfPatientID == "HOSP"
    assert ds.PatientBirthDate == "19800101" and ds.PatientSex == "F"
    assert ds.AccessionNumber == acc and ds.RequestedProcedureID == acc and ds.AdmissionID == "V" + acc
    assert ds.StudyInstanceUID == study_uid_for_accession(acc)
    assert str(ds.ReferringPhysicianName) == "Referrer^Rae" and ds.RequestedProcedurePriority == "ROUTINE"
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledStationAETitle == station and sps.Modality == "CT"
    assert (sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime) == ("20300115", "093000")
    assert sps.ScheduledProcedureStepID == acc and sps.ScheduledProcedureStepStatus == "SCHEDULED"
    assert sps.ScheduledProcedureStepDescription == "CT head"
    # only requested keys come back (plus nothing else at top level)
    assert "ReasonForTheRequestedProcedure" not in ds and "ScheduledProtocolCodeSequence" not in sps

    other = await findscu(mwl.port, by_station(station + "X"))
    assert other.returncode == 0 and other.responses == [], other.output


async def test_date_ranges_and_combined_date_time(mwl: DicomStack) -> None:
    station = uniq("DR")[:16]
    accs = [(await order_via_hl7(mwl, station=station, start=start))[0]
            for start in ("20300301080000", "20300302120000", "20300303160000")]

    async def query(date: str, time: str = "") -> list[str]:
        keys = by_station(station, f"{SPS}.ScheduledProcedureStepStartDate={date}")
        if time:
            keys.append(f"{SPS}.ScheduledProcedureStepStartTime={time}")
        res = await findscu(mwl.port, keys)
        assert res.returncode == 0, res.output
        return sorted(r.AccessionNumber for r in res.responses)

    assert await query("20300301-20300302") == sorted(accs[:2])
    assert await query("20300303-") == [accs[2]]
    assert await query("-20300301") == [accs[0]]
    assert await query("20300302") == [accs[1]]
    assert await query("20300304-") == []
    # 1 March 09:00 .. 3 March 15:00 as one period: excludes 08:00 on the 1st and 16:00 on the 3rd
    assert await query("20300301-20300303", "0900-1500") == [accs[1]]


async def test_non_ascii_names_come_back_with_their_character_set(mwl: DicomStack) -> None:
    station = uniq("NA")[:16]
    latin, _ = await order_via_hl7(mwl, station=station, start="20300401090000", family="Müller", given="Jürgen",
                                   msh18="8859/1", encoding="latin-1")
    cjk, _ = await order_via_hl7(mwl, station=station, start="20300401100000", family="山田", given="太郎",
                                 msh18="UNICODE UTF-8", encoding="utf-8")
    res = await findscu(mwl.port, by_station(station))
    assert res.returncode == 0, res.output
    by_acc = {r.AccessionNumber: r for r in res.responses}
    assert set(by_acc) == {latin, cjk}
    assert by_acc[latin].SpecificCharacterSet == "ISO_IR 100" and str(by_acc[latin].PatientName) == "Müller^Jürgen"
    assert by_acc[cjk].SpecificCharacterSet == "ISO_IR 192" and str(by_acc[cjk].PatientName) == "山田^太郎"

    # A Latin-1 query file (built with dump2dcm) matches the accented name case-insensitively.
    query = await dump2dcm(
        "(0008,0005) CS [ISO_IR 100]\n(0008,0050) SH []\n(0010,0010) PN [MÜLLER*]\n"
        f"(0040,0100) SQ (Sequence with explicit length #=1)\n(fffe,e000) na (Item with explicit length #=1)\n"
        f"(0040,0001) AE [{station}]\n(fffe,e00d) na (ItemDelimitationItem for re-encoding)\n"
        "(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)\n",
        Path(__file__).parent / f".q-{uuid.uuid4().hex[:6]}.dcm",
    )
    try:
        res = await findscu(mwl.port, [], query_file=query)
    finally:
        query.unlink(missing_ok=True)
        query.with_suffix(".dump").unlink(missing_ok=True)
    assert res.returncode == 0, res.output
    assert [r.AccessionNumber for r in res.responses] == [latin]


async def test_cancelled_and_started_orders_leave_the_worklist(mwl: DicomStack) -> None:
    station = uniq("CX")[:16]
    cancelled, _ = await order_via_hl7(mwl, station=station, start="20300501090000")
    started, _ = await order_via_hl7(mwl, station=station, start="20300501100000")
    kept, _ = await order_via_hl7(mwl, station=station, start="20300501110000")
    ack = await mwl.send_hl7(orm(uniq("C"), accession=cancelled, mrn="M1", family="X", given="Y", station=station,
                                 start="20300501090000", order_control="CA"))
    assert "MSA|AA" in ack, ack
    await mwl.service.send_event(started, event(EventKind.PROCEDURE_STARTED))

    async def listed() -> list[str]:
        res = await findscu(mwl.port, by_station(station))
        return sorted(r.AccessionNumber for r in res.responses)

    assert await eventually(listed, lambda accs: accs == [kept], timeout_s=10) == [kept]


BULK = 2000


async def test_cancel_stops_a_long_answer(mwl: DicomStack) -> None:
    from datetime import UTC, datetime, timedelta

    from radflow.domain.definitions import OrderStatus
    from radflow.domain.dicom.mwl import entry_from_state
    from radflow.domain.order import OrderState
    from tests.factories import make_order

    station = uniq("BULK")[:16]
    t0 = datetime(2030, 6, 1, 8, tzinfo=UTC)
    entries = [entry_from_state(OrderState(order=make_order(uniq("B"), station=station, start=t0 + timedelta(minutes=i)),
                                           status=OrderStatus.SCHEDULED, created_at=t0, updated_at=t0)) for i in range(BULK)]
    mwl.gateway.worklist_store.apply_many(entries)
    # The SCP checks for the C-CANCEL between matches, so it stops long before the end once the
    # cancel has arrived. On a starved machine findscu itself can be slower than the 2,000 answers
    # (seen under a load average of 5): up to three tries, one must be cut short.
    counts = []
    for _ in range(3):
        res = await findscu(mwl.port, [f"{SPS}.ScheduledStationAETitle={station}", "AccessionNumber"], extra=["-v", "--cancel", "3"])
        assert res.returncode == 0, res.output
        counts.append(len(res.responses))
        if len(res.responses) < BULK // 2:
            break
    assert 3 <= counts[-1] < BULK // 2, f"responses after C-CANCEL, per try: {counts}"
    assert "Final Find Response (Cancel" in res.output, res.output[-2000:]


async def test_over_long_values_are_served_within_their_vr(mwl: DicomStack, caplog: pytest.LogCaptureFixture) -> None:
    # Before: a 26-character station AE, a 90-character procedure text and a 69-character name
    # went onto the worklist as they came, beyond AE 16, LO 64 and PN 64 (per component group).
    caplog.set_level(logging.DEBUG, logger="radflow.worklist")
    station = uniq("CT_SCANNER_ROOM_4_")  # 26 characters
    family, given = "Überlangername" * 3, "Maximiliana-Konstantina-Jo"  # family^given: 69 characters, Latin-1
    text = "CT head with and without contrast, thin slices, reconstruction for neuro review, follow-up"
    acc = uniq("L")
    ack = await mwl.send_hl7(orm(uniq("C"), accession=acc, mrn=uniq("M"), family=family, given=given, station=station,
                                 start="20300901090000", code=f"CTHEADX^{text}^L"))
    assert "MSA|AA" in ack, ack
    await eventually(lambda: _row(mwl, acc), lambda r: r is not None and r.visible, timeout_s=10, every_s=0.05)

    found = await findscu(mwl.port, by_station(station[:16], f"{SPS}.ScheduledStationName"))
    assert found.returncode == 0, found.output
    [ds] = [r for r in found.responses if r.AccessionNumber == acc]
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledStationAETitle == station[:16]
    assert ds.RequestedProcedureDescription == text[:64].rstrip()
    assert sps.ScheduledProcedureStepDescription == text[:64].rstrip()
    assert str(ds.PatientName) == f"{family}^{given}"[:64]  # the component group is cut at 64 characters
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    cut = [r for r in caplog.records if r.getMessage() == "worklist values cut to their VR length"
           and getattr(r, "accession", "") == acc]
    assert cut and cut[-1].levelno == logging.DEBUG
    assert {"ScheduledStationAETitle", "PatientName", "RequestedProcedureDescription"} <= set(cut[-1].cut_keywords.split(","))
    assert not any(family[:10] in f"{r.getMessage()} {vars(r)}" for r in caplog.records if r.levelno >= logging.INFO)


async def test_omi_ipc6_protocol_is_the_scheduled_protocol_code_sequence(mwl: DicomStack) -> None:
    acc, station = uniq("P"), uniq("US")[:16]
    omi = "\r".join([
        f"MSH|^~\\&|CPOE|HOSP|RADFLOW|RAD|20300101080000||OMI^O23^OMI_O23|{uniq('C')}|P|2.5.1",
        f"PID|1||{uniq('M')}^^^HOSP^MR||Testperson^Alex||19800101|F",
        f"ORC|NW|PL{acc}^CPOE|||SC",
        "TQ1|1||||||20300902093000",
        f"OBR|1|PL{acc}^CPOE||USABD^US abdomen^L",
        f"IPC|{acc}^RIS|RP{acc}||SPS{acc}|US^Ultrasound^DCM|LIVER-PROT^Liver protocol^99LOCAL|US ROOM 1||{station}",
    ]).encode() + b"\r"
    ack = await mwl.send_hl7(omi)
    assert "MSA|AA" in ack, ack
    await eventually(lambda: _row(mwl, acc), lambda r: r is not None and r.visible, timeout_s=10, every_s=0.05)
    found = await findscu(mwl.port, by_station(station, f"{SPS}.ScheduledProtocolCodeSequence"))
    assert found.returncode == 0, found.output
    [ds] = found.responses
    [code] = ds.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("LIVER-PROT", "99LOCAL", "Liver protocol")
