"""Real-world feed semantics over MLLP against the Temporal dev server (issue 7 items 3 and 4)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.order import PersonName
from tests.gateways.dicom.dcmtk import findscu, require_dcmtk
from tests.gateways.dicom.gateway_stack import dicom_settings, dicom_stack, orm
from tests.gateways.hl7_support import Hl7Stack, hl7_stack  # noqa: F401
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SPS = "ScheduledProcedureStepSequence[0]"


def _a08(s: Hl7Stack, ctl: str, pid_tail: str, sent: str = "20240302100000") -> bytes:
    mrn = s.acc("MRN10001")
    return "\r".join([
        f"MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|{sent}||ADT^A08^ADT_A01|{ctl}|P|2.4",
        "EVN|A08|20240302100000",
        f"PID|1||{mrn}^^^GENHOSP^MR{pid_tail}",
    ]).encode()


def _xo(s: Hl7Stack, ctl: str, procedure: str, sent: str = "20240302100000") -> bytes:
    obr = "|".join(["OBR", "1", f"PL1001{s.tag}^CPOE", "", procedure] + [""] * 13 + [s.acc("ACC1001")])
    return "\r".join([
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|{sent}||ORM^O01|{ctl}|P|2.3",
        f"PID|1||{s.acc('MRN10001')}^^^GENHOSP^MR",
        f"ORC|XO|PL1001{s.tag}^CPOE",
        obr,
    ]).encode()


async def test_a08_with_empty_fields_keeps_demographics_and_quotes_delete_them(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc = s.acc("ACC1001")
    [nw] = await s.send(s.msg("orm_o01_nw_v23.hl7"))
    assert nw.code == "AA"
    full = PersonName(family="Testpatient", given="Alpha", middle="Q", suffix="Jr", prefix="Mr")

    # Only the identifier: nothing else was sent, nothing is lost.
    [keep] = await s.send(_a08(s, f"K{s.tag}", ""))
    assert keep.code == "AA"
    p = (await s.state(acc)).order.patient
    assert (p.name, p.birth_date, p.sex) == (full, "19750412", "F")

    # Empty PID-5/7/8 present as fields: still "not sent".
    [keep2] = await s.send(_a08(s, f"K2{s.tag}", "||||||"))
    assert keep2.code == "AA"
    p = (await s.state(acc)).order.patient
    assert (p.name, p.birth_date, p.sex) == (full, "19750412", "F")

    # "" in PID-8 deletes the sex, the rest stays.
    [delete] = await s.send(_a08(s, f"D{s.tag}", '|||||""'))
    assert delete.code == "AA"
    state = await s.state(acc)
    p = state.order.patient
    assert (p.name, p.birth_date, p.sex) == (full, "19750412", "")
    updates = [e for e in state.timeline if e.kind == "PATIENT_UPDATED"]
    assert [(e.control_id, e.summary) for e in updates] == [(f"D{s.tag}:{acc}", "patient demographics updated; deleted: patient.sex")]


async def test_a40_with_only_the_surviving_identifier_keeps_demographics(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc, old, new = s.acc("ACC1001"), s.acc("MRN10001"), f"NEW{s.tag}"
    [nw] = await s.send(s.msg("orm_o01_nw_v23.hl7"))
    assert nw.code == "AA"
    assert await s.count(f"PatientID = '{old}'", 1) == 1
    a40 = "\r".join([
        f"MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240303110000||ADT^A40^ADT_A39|M{s.tag}|P|2.5",
        "EVN|A40|20240303110000",
        f"PID|1||{new}^^^GENHOSP^MR",
        f"MRG|{old}^^^GENHOSP^MR",
    ]).encode()
    [merge] = await s.send(a40)
    assert merge.code == "AA"
    p = (await s.state(acc)).order.patient
    assert p.mrn == new
    assert (p.name.family, p.name.given, p.birth_date, p.sex) == ("Testpatient", "Alpha", "19750412", "F")


async def test_reused_msh10_with_different_content_is_applied_and_true_resend_is_not(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acc = s.acc("ACC1001")
    [nw] = await s.send(s.msg("orm_o01_nw_v23.hl7"))
    assert nw.code == "AA"
    ctl = f"R{s.tag}"

    [first] = await s.send(_xo(s, ctl, "CTCHEST^CT chest^L"))
    assert (first.code, first.control_id) == ("AA", ctl)
    assert (await s.state(acc)).order.procedure.code == "CTCHEST"

    # The sender's counter reset: same MSH-10, another message. It must be applied.
    [second] = await s.send(_xo(s, ctl, "CTABD^CT abdomen^L"))
    assert (second.code, second.control_id) == ("AA", ctl)
    assert (await s.state(acc)).order.procedure.code == "CTABD"

    # A true resend of the first message (only MSH-7 differs) after the second: no-op AA.
    [resend] = await s.send(_xo(s, ctl, "CTCHEST^CT chest^L", sent="20240302100500"))
    assert (resend.code, resend.control_id) == ("AA", ctl)
    state = await s.state(acc)
    assert state.order.procedure.code == "CTABD"
    changes = [e for e in state.timeline if e.kind == "ORDER_CHANGED"]
    assert [e.control_id for e in changes] == [ctl, ctl]  # the timeline still shows MSH-10



async def test_worklist_keeps_demographics_after_empty_a08_and_drops_sex_after_quotes(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """The worklist mirrors the merged order: DCMTK findscu sees what the A08s left."""
    require_dcmtk()
    tag = uuid.uuid4().hex[:6].upper()
    acc, mrn, station = f"W{tag}", f"M{tag}", f"CT{tag}"
    async with dicom_stack(client, dicom_settings(task_queue, tmp_path)) as mwl:
        ack = await mwl.send_hl7(orm(f"N{tag}", accession=acc, mrn=mrn, family="Doe", given="Jane", station=station,
                                     start="20300115093000"))
        assert "MSA|AA" in ack, ack

        async def a08(ctl: str, pid_tail: str) -> None:
            msg = (f"MSH|^~\\&|HIS|HOSP|RADFLOW|RAD|20300101090000||ADT^A08|{ctl}|P|2.4\r"
                   f"EVN|A08\rPID|1||{mrn}^^^HOSP^MR{pid_tail}").encode()
            assert "MSA|AA" in await mwl.send_hl7(msg)

        async def entry():
            found = await findscu(mwl.port, [f"{SPS}.ScheduledStationAETitle={station}", "PatientName", "PatientSex",
                                             "PatientBirthDate", "AccessionNumber"])
            assert found.returncode == 0, found.output
            return found.responses[0] if len(found.responses) == 1 else None

        await a08(f"E{tag}", "||||||")  # every demographic field empty: not sent
        await a08(f"G{tag}", "||Doe^Janet")  # a new given name, nothing else
        ds = await eventually(entry, lambda d: d is not None and str(d.PatientName) == "Doe^Janet")
        assert ds is not None and (str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == ("Doe^Janet", "19800101", "F")

        await a08(f"D{tag}", '|||||""')  # "" in PID-8: delete the sex
        ds = await eventually(entry, lambda d: d is not None and d.PatientSex == "")
        assert ds is not None and (str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == ("Doe^Janet", "19800101", "")
