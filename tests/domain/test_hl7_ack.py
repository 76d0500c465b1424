"""ACK building and reading (domain/hl7/ack.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack, build_batch, read_ack
from radflow.domain.hl7.decode import EncodingChars
from radflow.domain.hl7.parse import ErrorCode

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
ORM25 = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||OMI^O23^OMI_O23|MSG42|P|2.5.1|||AL|NE||UNICODE UTF-8\rPID|1"
ORM23 = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORM^O01|MSG43|T|2.3\rPID|1"


def test_header_from_text() -> None:
    h = AckHeader.from_text(ORM25)
    assert (h.sending_application, h.sending_facility) == ("CPOE", "GENHOSP")
    assert (h.receiving_application, h.receiving_facility) == ("RADFLOW", "RAD")
    assert (h.control_id, h.trigger, h.processing_id, h.version, h.charset) == ("MSG42", "O23", "P", "2.5.1", "UNICODE UTF-8")


def test_aa_v251_swaps_sender_and_echoes_version_and_charset() -> None:
    ack = build_ack(AckHeader.from_text(ORM25), AckCode.AA, control_id="ACK1", now=NOW)
    assert ack == (
        "MSH|^~\\&|RADFLOW|RAD|CPOE|GENHOSP|20240301120000+0000||ACK^O23^ACK|ACK1|P|2.5.1||||||UNICODE UTF-8\r"
        "MSA|CA|MSG42"  # MSH-15 AL / MSH-16 NE: enhanced mode, so the commit code CA
    )


def test_ae_v251_has_err_3_4_8() -> None:
    ack = build_ack(AckHeader.from_text(ORM25), AckCode.AE, "unknown order A|1", ErrorCode.UNKNOWN_KEY, "ORC-2",
                    control_id="ACK2", now=NOW)
    msh, msa, err = ack.split("\r")
    assert msa == "MSA|CE|MSG42|unknown order A\\F\\1"  # enhanced mode (MSH-15 AL)
    assert err == "ERR||ORC^1^2|204^Unknown key identifier^HL70357|E||||unknown order A\\F\\1"


def test_ar_v23_uses_err_1_and_old_message_type() -> None:
    ack = build_ack(AckHeader.from_text(ORM23), AckCode.AR, "PID-3 missing", ErrorCode.REQUIRED_FIELD_MISSING, "PID-3",
                    control_id="ACK3", now=NOW)
    msh, msa, err = ack.split("\r")
    assert msh == "MSH|^~\\&|RADFLOW|RAD|CPOE|GENHOSP|20240301120000+0000||ACK^O01|ACK3|T|2.3"
    assert msa == "MSA|AR|MSG43|PID-3 missing"
    assert err == "ERR|PID^1^3^101&Required field missing&HL70357"


def test_component_location() -> None:
    ack = build_ack(AckHeader.from_text(ORM25), AckCode.AR, "x", ErrorCode.UNSUPPORTED_EVENT, "MSH-9.2", now=NOW)
    assert ack.split("\r")[2].split("|")[2] == "MSH^1^9^1^2"


def test_custom_delimiters_are_used_in_the_ack() -> None:
    text = "MSH#$%\\!#CPOE#GENHOSP#RADFLOW#RAD#20240301##ORM$O01$ORM_O01#M9#P#2.4"
    ack = build_ack(AckHeader.from_text(text), AckCode.AE, "a#b", ErrorCode.INTERNAL_ERROR, "PID-3", control_id="A9", now=NOW)
    msh, msa, err = ack.split("\r")
    assert msh == "MSH#$%\\!#RADFLOW#RAD#CPOE#GENHOSP#20240301120000+0000##ACK$O01$ACK#A9#P#2.4"
    assert msa == "MSA#AE#M9#a\\F\\b"
    assert err == "ERR#PID$1$3$207!Application internal error!HL70357"


def test_garbage_gets_ar_with_empty_msa2() -> None:
    ack = build_ack(AckHeader.from_text("this is not HL7"), AckCode.AR, "no MSH", ErrorCode.SEGMENT_SEQUENCE, now=NOW,
                    application="RF", facility="SITE")
    msh, msa, err = ack.split("\r")
    assert msh.startswith("MSH|^~\\&|RF|SITE|||20240301120000+0000||ACK|")
    assert msh.endswith("|P|2.5.1")
    assert msa == "MSA|AR||no MSH"
    assert err.startswith("ERR|||100^Segment sequence error^HL70357|E")


def test_header_of_truncated_msh() -> None:
    h = AckHeader.from_text("junk\rMSH|^~\\&|APP|FAC")
    assert h.sending_application == "APP" and h.control_id == "" and h.version == ""


def test_batch_of_acks() -> None:
    acks = ["MSH|^~\\&|A\rMSA|AA|1", "MSH|^~\\&|A\rMSA|AA|2"]
    out = build_batch(acks, "BHS|^~\\&|HIS|GENHOSP|RADFLOW|RAD|2024||||BATCH77", EncodingChars(), now=NOW)
    segs = out.split("\r")
    assert segs[0].startswith("BHS|^~\\&|RADFLOW|RAD|HIS|GENHOSP|20240301120000+0000||||")
    assert segs[0].endswith("|BATCH77")
    assert segs[1:5] == ["MSH|^~\\&|A", "MSA|AA|1", "MSH|^~\\&|A", "MSA|AA|2"]
    assert segs[5] == "BTS|2"


def test_read_ack() -> None:
    ack = read_ack("MSH|^~\\&|EHR|X|RADFLOW|Y|2024||ACK^R01^ACK|Z1|P|2.5.1\rMSA|AE|RF123|busy \\T\\ later\rERR||||E")
    assert ack is not None and (ack.code, ack.control_id, ack.text) == ("AE", "RF123", "busy & later")
    assert not ack.accepted and not ack.rejected
    ar = read_ack("MSH|^~\\&|EHR\nMSA|AR|RF1\nERR|||101^x^HL70357|E||||missing PID")
    assert ar is not None and ar.rejected and ar.text == "missing PID"
    assert read_ack("MSH|^~\\&|EHR") is None


def test_table_0155_conditions() -> None:
    def wants(accept: str, app: str, code: AckCode) -> bool:
        return AckHeader.from_text(ORM23.replace("|T|2.3", f"|T|2.3|||{accept}|{app}")).wants_ack(code)

    assert AckHeader.from_text(ORM23).wants_ack(AckCode.AA) and not AckHeader.from_text(ORM23).enhanced
    assert [wants("AL", "", c) for c in AckCode] == [True, True, True]
    assert [wants("NE", "AL", c) for c in AckCode] == [False, False, False]
    assert [wants("ER", "", c) for c in AckCode] == [False, True, True]
    assert [wants("SU", "", c) for c in AckCode] == [True, False, False]
    assert [wants("", "AL", c) for c in AckCode] == [True, True, True]  # MSH-16 alone: enhanced, commit ACK sent
