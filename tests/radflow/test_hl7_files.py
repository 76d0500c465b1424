"""Splitting HL7 files into messages and reading ACKs (pure functions behind `radflow send-hl7`)."""

from __future__ import annotations

import pytest

from radflow.hl7_files import control_id, parse_ack, split_messages

MSH1 = b"MSH|^~\\&|A|B|C|D|20300101||ADT^A04|C1|P|2.3"
MSH2 = b"MSH|^~\\&|A|B|C|D|20300101||ADT^A08|C2|P|2.3"


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
def test_segments_grouped_per_msh_whatever_the_line_ending(sep: bytes) -> None:
    data = sep.join([MSH1, b"PID|1||M1", MSH2, b"PID|1||M2", b""])
    assert split_messages(data) == [MSH1 + b"\rPID|1||M1\r", MSH2 + b"\rPID|1||M2\r"]


def test_mllp_framed_file_is_taken_frame_by_frame() -> None:
    data = b"\x0b" + MSH1 + b"\rPID|1\r\x1c\r" + b"\x0b" + MSH2 + b"\r\x1c\r"
    assert split_messages(data) == [MSH1 + b"\rPID|1\r", MSH2 + b"\r"]


def test_batch_envelope_is_dropped_and_bytes_are_not_decoded() -> None:
    latin1 = b"PID|1||M1||M\xfcller^J"  # Latin-1 u-umlaut, no MSH-18: must travel as is
    data = b"\n".join([b"FHS|^~\\&", b"BHS|^~\\&", MSH1, latin1, b"BTS|1", b"FTS|1"])
    assert split_messages(data) == [MSH1 + b"\r" + latin1 + b"\r"]


def test_junk_before_first_msh_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the first MSH"):
        split_messages(b"PID|1\rMSH|^~\\&|x\r")


def test_control_id_and_custom_separator() -> None:
    assert control_id(MSH1 + b"\rPID|1") == "C1"
    assert control_id(b"MSH#^~\\&#A#B#C#D#2030##ADT^A04#X9#P#2.4") == "X9"


def test_parse_ack() -> None:
    ack = parse_ack(b"\x0bMSH|^~\\&|RADFLOW|RAD|A|B|2030||ACK^O01|R1|P|2.3\rMSA|AE|C7|unknown order ACC1\rERR|||\x1c\r")
    assert (ack.code, ack.control_id, ack.text) == ("AE", "C7", "unknown order ACC1")
    assert parse_ack(b"MSH|^~\\&|X\rMSA|AA|C8").code == "AA"
    assert parse_ack(b"garbage").code == "??"
    assert parse_ack(b"MSH|^~\\&|X\rERR|1").text == "ACK without MSA segment"
