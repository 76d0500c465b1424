"""Charsets, separators, batches and escape sequences (domain/hl7/decode.py)."""

from __future__ import annotations

import pytest

from radflow.domain.hl7.decode import (
    EncodingChars,
    decode,
    dicom_charset,
    escape,
    normalise_segments,
    python_codec,
    read_msh18,
    split_batch,
    unescape,
)
from tests.domain.hl7_fixtures import raw

MSH = "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|X1|P|2.5"


def test_latin1_without_msh18_decodes_and_is_detected() -> None:
    d = decode(raw("adt_a08_latin1_no_msh18.hl7"))
    assert d.declared == ""
    assert d.charset == "8859/1"
    assert "Müller^Jürgen^Ædelbert" in d.text


def test_declared_latin1_is_honoured() -> None:
    data = (MSH + "||||||8859/1\rPID|1||M1||Gr\xfcn").encode("latin-1")
    d = decode(data)
    assert (d.declared, d.charset, d.codec) == ("8859/1", "8859/1", "latin-1")
    assert d.text.endswith("PID|1||M1||Grün")


def test_declared_utf8_is_honoured() -> None:
    d = decode(raw("omi_o23_nw_v251.hl7"))
    assert (d.declared, d.charset, d.codec) == ("UNICODE UTF-8", "UNICODE UTF-8", "utf-8")
    assert "Tëstperson^Zoë" in d.text


def test_undeclared_utf8_is_detected_as_utf8() -> None:
    d = decode((MSH + "\rPID|1||M1||Zoë").encode("utf-8"))
    assert d.charset == "UNICODE UTF-8" and d.text.endswith("Zoë")


def test_declared_ascii_with_latin1_bytes_falls_back() -> None:
    d = decode((MSH + "||||||ASCII\rPID|1||M1||Gr\xfcn").encode("latin-1"))
    assert d.declared == "ASCII" and d.charset == "8859/1" and d.text.endswith("Grün")


def test_read_msh18_takes_the_first_repetition() -> None:
    assert read_msh18((MSH + "||||||8859/1~ISO IR87").encode()) == "8859/1"
    assert read_msh18(b"garbage") == ""


@pytest.mark.parametrize(
    ("msh18", "dicom", "codec"),
    [
        ("8859/1", "ISO_IR 100", "latin-1"),
        ("UNICODE UTF-8", "ISO_IR 192", "utf-8"),
        ("ASCII", "", "ascii"),
        ("8859/15", "ISO_IR 203", "iso8859-15"),
        ("8859/5", "ISO_IR 144", "iso8859-5"),
        ("ISO IR87", "ISO 2022 IR 6\\ISO 2022 IR 87", "iso2022_jp"),
        ("GB 18030-2000", "GB18030", "gb18030"),
        ("", "", None),
    ],
)
def test_charset_tables(msh18: str, dicom: str, codec: str | None) -> None:
    assert dicom_charset(msh18) == dicom
    assert python_codec(msh18) == codec


def test_unknown_charset_maps_to_utf8_on_the_worklist() -> None:
    assert dicom_charset("BIG-5") == "ISO_IR 192"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators_are_normalised(sep: str) -> None:
    text = sep.join([MSH, "PID|1||M1", "", "PV1|1|O"]) + sep
    assert normalise_segments(text) == "\r".join([MSH, "PID|1||M1", "PV1|1|O"])


def test_lf_fixture_decodes_to_cr_segments() -> None:
    d = decode(raw("orm_lf_separators.hl7"))
    assert "\n" not in d.text and d.text.count("\r") == 3


def test_batch_wrappers_are_split_off() -> None:
    env = split_batch(decode(raw("batch_adt.hl7")).text)
    assert env.batch
    assert env.header.startswith("BHS|^~\\&|HIS")
    assert [m.split("\r")[0].split("|")[9] for m in env.messages] == ["ADTB001", "ADTB002"]
    assert all(m.startswith("MSH") for m in env.messages)
    assert env.messages[1].endswith("PID|1||MRN10022^^^GENHOSP^MR||Batchtwo^Bob")


def test_text_before_msh_stays_a_message_to_reject() -> None:
    env = split_batch("hello\rworld\r" + MSH)
    assert not env.batch
    assert env.messages == ["hello\rworld", MSH]


def test_encoding_chars_from_custom_msh() -> None:
    enc = EncodingChars.from_msh("MSH#$%\\!#APP")
    assert (enc.field, enc.component, enc.repetition, enc.escape, enc.subcomponent) == ("#", "$", "%", "\\", "!")
    assert EncodingChars.from_msh("PID|x") == EncodingChars()


def test_unescape_standard_sequences() -> None:
    value = r"a\F\b\S\c\T\d\R\e\E\f\.br\g\X41C3A9\h\H\bold\N\i"
    assert unescape(value, EncodingChars(), "utf-8") == "a|b^c&d~e\\f\ngAéhboldi"


def test_unescape_uses_the_message_delimiters() -> None:
    enc = EncodingChars.from_msh("MSH#$%\\!#")
    assert unescape(r"x\F\y\S\z\T\w\R\v", enc) == "x#y$z!w%v"


def test_unescape_formatting_and_broken_sequences() -> None:
    assert unescape(r"a\.sp2\b\.in+4\c") == "a\n\nbc"
    assert unescape(r"tail \unterminated") == r"tail \unterminated"
    assert unescape(r"\XZZ\x") == "x"


def test_escape_round_trips() -> None:
    text = "pipe | caret ^ amp & tilde ~ back \\ end\nline two"
    escaped = escape(text)
    assert escaped == r"pipe \F\ caret \S\ amp \T\ tilde \R\ back \E\ end\.br\line two"
    assert unescape(escaped) == text
