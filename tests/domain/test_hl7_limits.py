"""Message size limits (domain/hl7/limits.py) and the parser's refusal of broken headers."""

from __future__ import annotations

import pytest

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.domain.hl7.decode import decode, unescape
from radflow.domain.hl7.limits import Hl7Limits
from radflow.domain.hl7.parse import ErrorCode, Hl7Error, parse_message, version_tuple
from tests.domain.hl7_fixtures import message

MSH = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORU^R01|C1|P|2.5"
SMALL = Hl7Limits(max_segments=10, max_field_chars=50, max_repetitions=5, max_obx=3, max_report_chars=100)


def _refused(text: str, limits: Hl7Limits = SMALL) -> Hl7Error:
    with pytest.raises(Hl7Error) as err:
        parse_message(text, limits=limits)
    return err.value


def test_within_limits_parses() -> None:
    pm = parse_message(message(MSH, "PID|1||M1~M2~M3", "OBR|1", "OBX|1|TX|X||" + "a" * 90), limits=SMALL)
    assert pm.repetitions(pm.first("PID"), 3) == 3


@pytest.mark.parametrize(("segments", "location", "words"), [
    ([MSH] + ["NTE|1"] * 10, "", "11 segments"),
    ([MSH, "PID|1||" + "x" * 51], "PID-3", "51 characters"),
    ([MSH.replace("CPOE", "C" * 51)], "MSH-3", "51 characters"),
    ([MSH, "PID|1||" + "~" * 5], "PID-3", "6 repetitions"),
    ([MSH, "OBR|1"] + ["OBX|1|TX|X||a"] * 4, "OBX", "more than 3 OBX"),
    ([MSH, "OBR|1", "OBX|1|TX|X||" + "a" * 60, "OBX|2|TX|X||" + "a" * 41], "OBX-5", "report text longer"),
])
def test_over_a_limit_is_refused_with_the_place(segments: list[str], location: str, words: str) -> None:
    err = _refused(message(*segments))
    assert words in err.reason
    assert err.location == location
    assert err.code in (ErrorCode.VALUE_TOO_LONG, ErrorCode.SEGMENT_SEQUENCE)


@pytest.mark.parametrize("filler", ["|", "^", "&", "\\"])
def test_a_message_of_delimiters_is_refused_before_parsing(filler: str) -> None:
    # 60,000 fields in one segment took 0.7 s of parsing on the gateway's event loop; 1 MiB of them ~10 s.
    err = _refused(message(MSH, "ZZZ|" + filler * 60_000), Hl7Limits())
    assert "delimiters, more than the limit of 50000" in err.reason


def test_300k_repetition_separators_in_obx5_are_refused_by_default() -> None:
    err = _refused(message(MSH, "OBR|1", "OBX|1|TX|X||" + "~" * 300_000), Hl7Limits())
    assert "300" in err.reason and "delimiters" in err.reason


def test_1001_repetitions_are_refused_by_default() -> None:
    err = _refused(message(MSH, "OBR|1", "OBX|1|TX|X||" + "~" * 1000), Hl7Limits())
    assert "1001 repetitions" in err.reason and err.location == "OBX-5"


def test_limits_come_from_settings() -> None:
    class S:
        hl7_max_repetitions = 7
    assert Hl7Limits.from_settings(S()).max_repetitions == 7
    assert Hl7Limits.from_settings(S()).max_obx == Hl7Limits().max_obx


@pytest.mark.parametrize("text", ["MSH\rPID|1||X", "MSH\nPID|1", "MSH|^~\\^|A", "MSH1^~\\&|A|B", "MSH|^ \\&|A"])
def test_broken_delimiters_are_refused_not_crashed(text: str) -> None:
    assert _refused(decode(text.encode()).text).location == "MSH-2"


@pytest.mark.parametrize("version", ["2.5\u00b2", "2.\u00b3", "2." + "3" * 4301, "\u0662.\u0665", "2.5.1234"])
def test_odd_versions_are_ar_203_and_ack_builds(version: str) -> None:
    text = message(MSH.replace("|2.5", "|" + version), "PID|1||M1")
    err = _refused(text, Hl7Limits())
    assert err.code == ErrorCode.UNSUPPORTED_VERSION
    assert len(err.reason) < 120  # the reason quotes the value cut short
    ack = build_ack(AckHeader.from_text(text), AckCode.AR, err.reason, err.code)
    assert "|2.5.1\r" in ack  # an unusable version is not echoed


def test_version_tuple_never_raises() -> None:
    assert version_tuple("2.5.1") == (2, 5, 1)
    assert version_tuple("2.5\u00b2") == (2,)
    assert version_tuple("3" * 5000) == ()


def test_sp_escape_count_is_capped() -> None:
    assert unescape("a\\.sp 999999999\\b") == "a" + "\n" + "b"  # more than 5 digits: one line
    assert unescape("a\\.sp 99999\\b").count("\n") == 100
    assert unescape("a\\.sp\u00b2\\b") == "a\nb"


def test_ack_for_a_header_with_letter_delimiters_uses_the_standard_ones() -> None:
    # Found by the fuzz tests: "MSHMSH|..." made "M" the field separator of our AR.
    text = "MSHMSH|^~\\&|HIS|H|RADFLOW|R|2024||ADT^A04|C1|P|2.3\rPID|1||M1"
    assert _refused(text).location == "MSH-2"
    from radflow.domain.hl7.ack import read_ack
    ack = read_ack(build_ack(AckHeader.from_text(text), AckCode.AR, "invalid encoding characters"))
    assert ack is not None and ack.code == "AR"
