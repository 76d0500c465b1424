"""Worklist values longer than their VR allows are cut at a character boundary (issue 7 item 10),
and IPC-6 becomes the Scheduled Protocol Code Sequence."""

from __future__ import annotations

from datetime import UTC, datetime

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.charset import UTF8
from radflow.domain.dicom.mwl import entry_from_state, worklist_item
from radflow.domain.dicom.vr_limits import cut, fit_value
from radflow.domain.hl7.mapping import map_message
from radflow.domain.hl7.parse import parse_message
from radflow.domain.order import OrderState, PersonName, Procedure
from tests.domain.hl7_fixtures import message
from tests.factories import make_order

SPS = "ScheduledProcedureStepSequence"


def state_of(order) -> OrderState:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    return OrderState(order=order, status=OrderStatus.SCHEDULED, created_at=t, updated_at=t)


def test_over_long_values_are_cut_to_their_vr_and_the_keywords_reported() -> None:
    # Before: a 30-character station AE, a 40-character SPS id and a 100-character description were
    # served as they came; strict modalities refuse such a response.
    order = make_order("ACC-LONG", station="CT_SCANNER_ROOM_4_WEST_WING_01")
    order.schedule.sps_id = "SPS-" + "9" * 36
    order.schedule.station_name = "Station name far beyond sixteen"
    order.procedure = Procedure(code="PROC-CODE-LONGER-THAN-SH", text="D" * 100, coding_system="L")
    order.patient.name = PersonName(family="Ñ" * 70, given="Zoë")
    entry = entry_from_state(state_of(order))
    item, sps = entry.item, entry.item[SPS][0]
    assert sps["ScheduledStationAETitle"] == "CT_SCANNER_ROOM_"
    assert sps["ScheduledProcedureStepID"] == "SPS-" + "9" * 12
    assert sps["ScheduledStationName"] == "Station name far"
    assert item["RequestedProcedureDescription"] == "D" * 64
    assert sps["ScheduledProtocolCodeSequence"][0]["CodeValue"] == "PROC-CODE-LONGER"
    assert item["PatientName"] == "Ñ" * 64  # one PN component group, 64 characters, multi-byte kept whole
    assert item["AccessionNumber"] == "ACC-LONG" and entry.accession == "ACC-LONG"
    assert set(entry.cut_keywords) >= {"ScheduledStationAETitle", "ScheduledProcedureStepID", "ScheduledStationName",
                                       "RequestedProcedureDescription", "CodeValue", "PatientName"}
    assert not any("Ñ" in k or "CT_SCANNER" in k for k in entry.cut_keywords)  # keywords only, never values


def test_values_within_limits_are_untouched_and_nothing_is_reported() -> None:
    entry = entry_from_state(state_of(make_order("ACC-OK")))
    assert entry.cut_keywords == ()
    assert entry.item == worklist_item(make_order("ACC-OK").model_copy(update={"placer_number": entry.item["PlacerOrderNumberImagingServiceRequest"]}))


def test_person_name_groups_are_limited_separately_and_combining_marks_stay_with_their_base() -> None:
    alphabetic, ideographic = "A" * 80, "山田" * 40
    assert fit_value("PatientName", f"{alphabetic}={ideographic}") == f"{'A' * 64}={'山田' * 32}"
    decomposed = "e" * 63 + "e\u0301" + "x"  # the 64th character carries a combining acute accent
    assert cut(decomposed, 64) == "e" * 63  # the accent is not left behind on its own, nor split off
    assert fit_value("StudyInstanceUID", "1." * 40) == "1." * 40  # UIDs are never cut
    assert fit_value("Modality", "CT ") == "CT "


def test_multi_byte_text_keeps_its_character_set_after_cutting() -> None:
    order = make_order("ACC-MB")
    order.procedure = Procedure(code="X", text="脳" * 80, coding_system="L")
    item = worklist_item(order)
    assert item["RequestedProcedureDescription"] == "脳" * 64
    assert item["SpecificCharacterSet"] == UTF8
    assert item["RequestedProcedureDescription"].encode("utf-8").decode("utf-8")  # whole characters only


OMI = ("MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301091000||OMI^O23^OMI_O23|OMI9|P|2.5.1",
       "PID|1||MRN9^^^GENHOSP^MR||Testperson^Alex||19900202|F",
       "ORC|NW|PL9^CPOE|FL9^RIS||SC",
       "TQ1|1||||||20300307080000",
       "OBR|1|PL9^CPOE|FL9^RIS|USABD^US abdomen^L")


def test_ipc6_protocol_code_becomes_the_scheduled_protocol_code_sequence() -> None:
    ipc = "IPC|ACC9^RIS|RP9||SPS9|US^Ultrasound^DCM|LIVER-PROT^Liver protocol^99LOCAL|US ROOM 1||US01"
    [cmd] = map_message(parse_message(message(*OMI, ipc)))
    assert cmd.order is not None
    assert cmd.order.schedule.protocol == Procedure(code="LIVER-PROT", text="Liver protocol", coding_system="99LOCAL")
    item = worklist_item(cmd.order)
    assert item[SPS][0]["ScheduledProtocolCodeSequence"] == [
        {"CodeValue": "LIVER-PROT", "CodingSchemeDesignator": "99LOCAL", "CodeMeaning": "Liver protocol"}]
    assert item["RequestedProcedureCodeSequence"][0]["CodeValue"] == "USABD"

    [cmd] = map_message(parse_message(message(*OMI, "IPC|ACC9^RIS|RP9||SPS9|US^Ultrasound^DCM||US ROOM 1||US01")))
    assert cmd.order is not None and cmd.order.schedule.protocol == Procedure()
    item = worklist_item(cmd.order)  # no IPC-6: the requested procedure's code stands in, as before
    assert item[SPS][0]["ScheduledProtocolCodeSequence"][0]["CodeValue"] == "USABD"
