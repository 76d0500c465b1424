"""HL7 fields -> order model (domain/hl7/mapping.py), exact values on every fixture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.hl7.mapping import CommandKind, MappingConfig, map_message, parse_hl7_datetime
from radflow.domain.hl7.parse import ErrorCode, FieldSpec, parse_message
from radflow.domain.order import EventKind, PersonName
from tests.domain.hl7_fixtures import commands, message, seg

MSH23 = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||{type}|C9|P|2.3"
PID = "PID|1||MRN1^^^H^MR||Fam^Giv"


def one(name: str, config: MappingConfig | None = None):
    cmds = commands(name, config)
    assert len(cmds) == 1
    return cmds[0]


def mapped(msh_type: str, *segments: str, config: MappingConfig | None = None):
    return map_message(parse_message(message(MSH23.format(type=msh_type), *segments)), config)


# ------------------------------------------------------------------ orders
def test_orm_v23_new_order_maps_every_field() -> None:
    cmd = one("orm_o01_nw_v23.hl7")
    assert cmd.kind == CommandKind.START_ORDER and cmd.label == "ORM^O01 NW" and cmd.control_id == "ORM0001"
    o = cmd.order
    assert o is not None
    assert (o.accession, o.placer_number, o.filler_number) == ("ACC1001", "PL1001", "FL2001")
    assert cmd.placer_key == "PL1001^CPOE"
    p = o.patient
    assert (p.mrn, p.issuer, p.birth_date, p.sex) == ("MRN10001", "GENHOSP", "19750412", "F")
    assert p.name == PersonName(family="Testpatient", given="Alpha", middle="Q", suffix="Jr", prefix="Mr")
    assert (o.visit.patient_class, o.visit.visit_number, o.visit.location) == ("O", "V5001", "RAD^R101^1")
    assert o.referring_physician == PersonName(family="Referrer", given="Rita", prefix="Dr")
    assert (o.procedure.code, o.procedure.text, o.procedure.coding_system) == ("CTHEAD", "CT head without contrast", "L")
    s = o.schedule
    assert (s.station_ae, s.modality, s.sps_id, s.requested_procedure_id) == ("CT01", "CT", "SPS1001", "RP1001")
    assert s.start == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # OBR-27.4 (no OBR-36)
    assert o.priority == "S"  # OBR-27.6 before ORC-7.6
    assert o.reason == "Headache after fall"
    assert o.requested_at == datetime(2024, 3, 1, 8, 55, tzinfo=UTC)  # OBR-6 before ORC-9
    assert o.ordering_provider.id == "0456"
    assert o.ordering_provider.name == PersonName(family="Orderer", given="Olga", middle="M", prefix="Dr")
    assert o.study_instance_uid == "1.2.826.0.1.3680043.9.7777.1001"  # ZDS-1
    assert o.character_set == ""
    assert s.is_scheduled()


def test_orm_v24_with_offset_and_latin1_declaration() -> None:
    o = one("orm_o01_nw_v24.hl7").order
    assert o is not None
    assert o.accession == "ACC1002" and o.filler_number == ""
    assert o.schedule.start == datetime(2024, 3, 6, 9, 0, tzinfo=UTC)
    assert o.schedule.modality == "MR" and o.schedule.station_ae == ""
    assert o.priority == "A" and o.reason == "Knee pain"
    assert o.visit.location == "WARD3^12^B" and o.visit.patient_class == "I"
    assert o.character_set == "8859/1"


def test_omi_v251_uses_ipc_and_tq1() -> None:
    cmd = one("omi_o23_nw_v251.hl7")
    assert cmd.kind == CommandKind.START_ORDER and cmd.label == "OMI^O23 NW"
    o = cmd.order
    assert o is not None
    assert o.accession == "ACC1003"  # IPC-1 wins over ORC-3 (FL2003)
    assert o.filler_number == "FL2003"
    s = o.schedule
    assert (s.station_ae, s.modality, s.station_name, s.location) == ("US01", "US", "US ROOM 1", "US1")
    assert (s.sps_id, s.requested_procedure_id) == ("SPS1003", "RP1003")
    assert s.start == datetime(2024, 3, 7, 8, 0, tzinfo=UTC)  # TQ1-7
    assert o.priority == "S"  # TQ1-9
    assert o.study_instance_uid == "1.2.826.0.1.3680043.9.7777.1003"
    assert o.patient.name.family == "Tëstperson" and o.patient.issuer == "GENHOSP"
    assert o.requested_at == datetime(2024, 3, 1, 9, 9, tzinfo=UTC)  # ORC-9 when OBR-6 is empty
    assert o.ordering_provider.name.family == "Orderer" and o.ordering_provider.id == "0789"
    assert o.character_set == "UNICODE UTF-8"


def test_custom_delimiters_map_like_the_standard_ones() -> None:
    o = one("custom_delimiters_v24.hl7").order
    assert o is not None
    assert (o.accession, o.placer_number, o.patient.mrn, o.patient.issuer) == ("ACC1010", "PL1010", "MRN10010", "GENHOSP")
    assert o.patient.name.family == "Delimiter$Test" and o.patient.name.given == "Dee"
    assert o.procedure.text == "XR chest"
    assert o.reason == "hat$ and pipe#"


def test_lf_separators_and_z_segments() -> None:
    assert one("orm_lf_separators.hl7").order.accession == "ACC1012"
    o = one("zsegments_v23.hl7").order
    assert o is not None
    assert o.accession == "ACC1011" and o.study_instance_uid == "1.2.826.0.1.3680043.9.7777.1011"
    assert o.patient.birth_date == "" and o.patient.sex == "U"  # PID-7 was ""
    assert o.visit.patient_class == "" and o.ordering_provider.id == ""


def test_accession_fields_follow_the_configuration() -> None:
    cfg = MappingConfig(accession_fields=(FieldSpec.parse("ORC-3"),))
    assert one("orm_o01_nw_v23.hl7", cfg).order.accession == "FL2001"
    cfg = MappingConfig(accession_fields=(FieldSpec.parse("OBR-18"),))
    assert one("omi_o23_nw_v251.hl7", cfg).order.accession == "ACC1003"  # IPC-1 still first for OMI


def test_station_ae_fields_follow_the_configuration() -> None:
    cfg = MappingConfig(station_ae_fields=(FieldSpec.parse("OBR-19"),))
    assert one("orm_o01_nw_v23.hl7", cfg).order.schedule.station_ae == "RP1001"


def test_new_order_without_accession_keeps_the_placer_key() -> None:
    [cmd] = mapped("ORM^O01", PID, "ORC|NW|PL77^EPIC", "OBR|1|PL77^EPIC||CTX^CT x^L")
    assert cmd.kind == CommandKind.START_ORDER
    assert cmd.order.accession == "" and cmd.placer_key == "PL77^EPIC"
    [cmd] = mapped("ORM^O01", PID, "ORC|NW|PL78", "OBR|1|PL78||CTX^CT x^L")
    assert cmd.placer_key == "PL78^CPOE"  # placer application falls back to MSH-3


def test_section_id_that_is_not_a_modality_is_ignored() -> None:
    [cmd] = mapped("ORM^O01", PID, "ORC|NW|PL1", seg("OBR", {1: "1", 2: "PL1", 4: "X^X^L", 18: "A1", 24: "RAD"}))
    assert cmd.order.schedule.modality == ""
    [cmd] = mapped("ORM^O01", PID, "ORC|NW|PL1", seg("OBR", {1: "1", 2: "PL1", 4: "X^X^L", 18: "A1", 24: "NMR"}))
    assert cmd.order.schedule.modality == "MR"


@pytest.mark.parametrize(
    ("control", "kind"),
    [("CA", EventKind.CANCEL), ("OC", EventKind.CANCEL), ("DC", EventKind.DISCONTINUE), ("OD", EventKind.DISCONTINUE)],
)
def test_cancel_and_discontinue_controls(control: str, kind: EventKind) -> None:
    [cmd] = mapped("ORM^O01", seg("ORC", {1: control, 2: "PL1^CPOE", 16: "^Patient declined"}),
                   seg("OBR", {1: "1", 2: "PL1^CPOE", 4: "X", 18: "ACC5"}))
    assert cmd.kind == CommandKind.ORDER_EVENT and cmd.accession == "ACC5"
    assert cmd.event.kind == kind and cmd.event.reason == "Patient declined"
    assert cmd.event.source == EventSource.HL7 and cmd.event.control_id == "C9"


def test_cancel_without_pid_or_obr_finds_the_order_by_placer() -> None:
    [cmd] = mapped("ORM^O01", "ORC|CA|PL1^CPOE")
    assert cmd.kind == CommandKind.ORDER_EVENT and cmd.accession == "" and cmd.placer_key == "PL1^CPOE"


def test_status_change_carries_orc5() -> None:
    [cmd] = mapped("ORM^O01", "ORC|SC|PL1|ACC5||IP")
    assert cmd.event.kind == EventKind.STATUS_CHANGED and cmd.event.order_status == "IP" and cmd.accession == "ACC5"


def test_order_change_carries_the_full_order() -> None:
    [cmd] = mapped("ORM^O01", PID, "ORC|XO|PL1|ACC5", "OBR|1|PL1|ACC5|MRX^MR x^L")
    assert cmd.event.kind == EventKind.ORDER_CHANGED
    assert cmd.event.order.procedure.code == "MRX" and cmd.event.order.patient.mrn == "MRN1"


def test_two_orders_in_one_message() -> None:
    cmds = mapped("ORM^O01", PID, "ORC|NW|PL1", "OBR|1|PL1||A^A^L||||||||||||||ACC1", "ORC|NW|PL2", "OBR|2|PL2||B^B^L||||||||||||||ACC2")
    assert [c.order.accession for c in cmds] == ["ACC1", "ACC2"]
    assert [c.order.procedure.code for c in cmds] == ["A", "B"]


@pytest.mark.parametrize(
    ("msh_type", "segments", "code", "location"),
    [
        ("ORM^O01", [PID, "OBR|1|PL1"], ErrorCode.SEGMENT_SEQUENCE, "ORC"),
        ("ORM^O01", [PID, "ORC|NW|PL1"], ErrorCode.SEGMENT_SEQUENCE, "OBR"),
        ("ORM^O01", ["ORC|NW|PL1", "OBR|1|PL1||X||||||||||||||A1"], ErrorCode.SEGMENT_SEQUENCE, "PID"),
        ("ORM^O01", ["PID|1||", "ORC|NW|PL1", "OBR|1|PL1||X||||||||||||||A1"], ErrorCode.REQUIRED_FIELD_MISSING, "PID-3"),
        ("ORM^O01", [PID, "ORC||PL1", "OBR|1|PL1"], ErrorCode.REQUIRED_FIELD_MISSING, "ORC-1"),
        ("ORM^O01", [PID, "ORC|ZZ|PL1", "OBR|1|PL1"], ErrorCode.TABLE_VALUE_NOT_FOUND, "ORC-1"),
        ("ORM^O01", [PID, "ORC|NW", "OBR|1||||"], ErrorCode.REQUIRED_FIELD_MISSING, "ORC-2"),
        ("ORM^O01", [PID, "ORC|SC|PL1"], ErrorCode.REQUIRED_FIELD_MISSING, "ORC-5"),
        ("ORM^O01", [PID, "ORC|NW|PL1", "OBR|1|PL1||X||notadate"], ErrorCode.DATA_TYPE, "OBR-6"),
        ("ORM^O02", [PID], ErrorCode.UNSUPPORTED_EVENT, "MSH-9.2"),
        ("OMI^O99", [PID], ErrorCode.UNSUPPORTED_EVENT, "MSH-9.2"),
        ("ADT^A99", [PID], ErrorCode.UNSUPPORTED_EVENT, "MSH-9.2"),
        ("ORU^R30", [PID], ErrorCode.UNSUPPORTED_EVENT, "MSH-9.2"),
        ("SIU^S12", [PID], ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH-9"),
        ("ORU^R01", [PID], ErrorCode.SEGMENT_SEQUENCE, "OBR"),
        ("ORU^R01", [PID, "OBR|1|PL1||X||||||||||||||A1"], ErrorCode.REQUIRED_FIELD_MISSING, "OBR-25"),
        ("ORU^R01", [PID, seg("OBR", {1: "1", 2: "PL1", 4: "X", 18: "A1", 25: "R"})], ErrorCode.TABLE_VALUE_NOT_FOUND, "OBR-25"),
        ("ADT^A08", ["EVN|A08"], ErrorCode.SEGMENT_SEQUENCE, "PID"),
        ("ADT^A40", [PID], ErrorCode.SEGMENT_SEQUENCE, "MRG"),
        ("ADT^A40", [PID, "MRG|"], ErrorCode.REQUIRED_FIELD_MISSING, "MRG-1"),
    ],
)
def test_unusable_messages_become_unsupported(msh_type: str, segments: list[str], code: ErrorCode, location: str) -> None:
    [cmd] = mapped(msh_type, *segments)
    assert cmd.kind == CommandKind.UNSUPPORTED
    assert (cmd.error_code, cmd.location) == (int(code), location), cmd.reason
    assert cmd.reason


# ------------------------------------------------------------------ reports
def test_oru_preliminary() -> None:
    cmd = one("oru_r01_p_v23.hl7")
    assert cmd.kind == CommandKind.ORDER_EVENT and cmd.label == "ORU^R01 P" and cmd.accession == "ACC1001"
    r = cmd.event.report
    assert cmd.event.kind == EventKind.REPORT
    assert r.status == ReportStatus.PRELIMINARY and r.text == "Preliminary: no acute findings."
    assert r.observed_at == datetime(2024, 3, 5, 15, 55, tzinfo=UTC)  # OBX-14
    assert r.interpreter == PersonName(family="Reader", given="Rachel", prefix="Dr")
    assert r.received_control_id == "ORU0001"


def test_oru_final_joins_tx_ft_st_and_skips_numbers() -> None:
    r = one("oru_r01_f_v23.hl7").event.report
    assert r.status == ReportStatus.FINAL
    assert r.text == (
        "FINDINGS:\n"
        "No intracranial haemorrhage.\n"
        "Ventricles normal.\n"
        "Sizes: 3^4 cm & stable|ok.\n"
        "IMPRESSION: Normal study."
    )


def test_oru_corrected_v251() -> None:
    cmd = one("oru_r01_c_v251.hl7")
    assert cmd.accession == "ACC1001"  # OBR-18 empty: ORC-3 is next in the configured fields
    r = cmd.event.report
    assert r.status == ReportStatus.CORRECTED
    assert r.text == "CORRECTED: no acute findings; small old infarct."
    assert r.observed_at == datetime(2024, 3, 6, 8, 55, tzinfo=UTC)
    assert r.interpreter == PersonName(family="Reader", given="Rachel")


def test_oru_observation_time_falls_back_to_obr7() -> None:
    [cmd] = mapped("ORU^R01", PID, seg("OBR", {1: "1", 2: "PL1", 4: "X", 7: "20240102030405", 18: "A1", 25: "F"}),
                   "OBX|1|TX|||text")
    assert cmd.event.report.observed_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# ------------------------------------------------------------------ ADT
def test_adt_a04_registers_the_patient_for_fan_out() -> None:
    cmd = one("adt_a04_v23.hl7")
    assert cmd.kind == CommandKind.PATIENT_FANOUT and cmd.fanout_mrn == "MRN10001"
    e = cmd.event
    assert e.kind == EventKind.PATIENT_UPDATED and e.control_id == "ADT0001"
    assert e.patient.mrn == "MRN10001" and e.patient.issuer == "GENHOSP"  # MR repetition, not the SS one
    assert e.at == datetime(2024, 3, 1, 8, 15, tzinfo=UTC)  # EVN-2


def test_adt_a08_latin1() -> None:
    cmd = one("adt_a08_latin1_no_msh18.hl7")
    assert cmd.event.patient.name == PersonName(family="Müller", given="Jürgen", middle="Ædelbert")
    assert cmd.event.patient.sex == "M" and cmd.event.patient.birth_date == "19550505"


def test_adt_a08_v24() -> None:
    cmd = one("adt_a08_v24.hl7")
    assert cmd.event.kind == EventKind.PATIENT_UPDATED and cmd.event.patient.name.middle == "Quinn"


def test_adt_a40_merge() -> None:
    cmd = one("adt_a40_v25.hl7")
    assert cmd.kind == CommandKind.PATIENT_FANOUT and cmd.fanout_mrn == "MRN10009"
    e = cmd.event
    assert e.kind == EventKind.PATIENT_MERGED
    assert e.patient.mrn == "MRN20002" and e.patient.name.family == "Testmerged"
    assert (e.merged_from.mrn, e.merged_from.issuer) == ("MRN10009", "GENHOSP")


def test_adt_a40_with_two_merge_pairs() -> None:
    cmds = mapped("ADT^A40", "PID|1||NEW1^^^H^MR", "MRG|OLD1^^^H^MR", "PID|2||NEW2^^^H^MR", "MRG|OLD2^^^H^MR")
    assert [(c.fanout_mrn, c.event.patient.mrn) for c in cmds] == [("OLD1", "NEW1"), ("OLD2", "NEW2")]


def test_pid_without_mr_type_uses_the_first_identifier_and_pid2_fallback() -> None:
    [cmd] = mapped("ADT^A08", "PID|1||X1^^^H~X2^^^H^MR")
    assert cmd.fanout_mrn == "X2"
    [cmd] = mapped("ADT^A08", "PID|1||X1^^^H~X2^^^H")
    assert cmd.fanout_mrn == "X1"
    [cmd] = mapped("ADT^A08", "PID|1|OLDSTYLE^^^H")
    assert cmd.fanout_mrn == "OLDSTYLE" and cmd.event.patient.issuer == "H"


# ------------------------------------------------------------------ times
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC)),
        ("202403", datetime(2024, 3, 1, tzinfo=UTC)),
        ("20240305", datetime(2024, 3, 5, tzinfo=UTC)),
        ("2024030514", datetime(2024, 3, 5, 14, tzinfo=UTC)),
        ("202403051430", datetime(2024, 3, 5, 14, 30, tzinfo=UTC)),
        ("20240305143015", datetime(2024, 3, 5, 14, 30, 15, tzinfo=UTC)),
        ("20240305143015.25", datetime(2024, 3, 5, 14, 30, 15, 250000, tzinfo=UTC)),
        ("20240305143015-0500", datetime(2024, 3, 5, 14, 30, 15, tzinfo=timezone(timedelta(hours=-5)))),
        ("202403051430+0130", datetime(2024, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=1, minutes=30)))),
        ("", None),
    ],
)
def test_hl7_datetimes(value: str, expected: datetime | None) -> None:
    assert parse_hl7_datetime(value) == expected


def test_naive_times_use_the_site_timezone() -> None:
    got = parse_hl7_datetime("20240701120000", "Europe/Paris")
    assert got == datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    assert got.astimezone(UTC).hour == 10
    cfg = MappingConfig(default_timezone="America/New_York")
    o = one("orm_o01_nw_v23.hl7", cfg).order
    assert o.schedule.start.astimezone(UTC) == datetime(2024, 3, 5, 19, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2024-03-05", "20241305", "abc", "202403051", "20240305 1200"])
def test_bad_datetimes_raise(value: str) -> None:
    with pytest.raises(ValueError):
        parse_hl7_datetime(value)


def test_config_from_settings() -> None:
    class S:
        hl7_accession_fields = ["ORC-3"]
        hl7_station_ae_fields = ["OBR-20"]
        hl7_default_timezone = "Europe/Berlin"

    cfg = MappingConfig.from_settings(S())
    assert cfg.accession_fields == (FieldSpec("ORC", 3),)
    assert cfg.station_ae_fields == (FieldSpec("OBR", 20),)
    assert cfg.default_timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    "obr,ipc,expected",
    [
        ("OBR|1|PL9||CTH^CT head^L", "IPC|ACC9|RP9||SPS9|CT||PR1^Protocol 1^99P", ("CTH", "CT head", "L")),
        ("OBR|1|PL9" + "|" * 42 + "CT44^CT from OBR-44^C4", "IPC|ACC9|RP9||SPS9|CT",
         ("CT44", "CT from OBR-44", "C4")),
        ("OBR|1|PL9", "IPC|ACC9|RP9||SPS9|CT|PR1^Protocol 1^99P", ("PR1", "Protocol 1", "99P")),
    ],
)
def test_procedure_falls_back_to_obr44_then_ipc6(obr: str, ipc: str, expected: tuple[str, str, str]) -> None:
    # An OMI whose procedure only comes as a protocol code (IPC-6) must still name it, or the
    # FHIR ServiceRequest has no code (prr-1) and the worklist no requested procedure.
    [cmd] = mapped("OMI^O23", PID, "ORC|NW|PL9", "TQ1|1||||||20300101080000", obr, ipc)
    proc = cmd.order.procedure
    assert (proc.code, proc.text, proc.coding_system) == expected
