"""Malformed and unusual messages against a live listener (acceptance 7): the right ACK code, and
the listener still answers a good message afterwards on the same and on a new connection."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from radflow.gateways.mllp import frame
from tests.gateways.hl7_support import Hl7Stack, ack_of, hl7_stack  # noqa: F401

pytestmark = pytest.mark.integration


def _msh(tag: str, ctl: str, mtype: str = "ORM^O01", version: str = "2.3", sep: str = "|", enc: str = "^~\\&") -> str:
    return sep.join(["MSH", enc, "CPOE", "GENHOSP", "RADFLOW", "RAD", "20240301090000", "", mtype, f"{ctl}-{tag}", "P", version])


def _nw(tag: str, ctl: str, n: int, seg_sep: str = "\r") -> str:
    acc = f"R{n}{tag}"
    return seg_sep.join([
        _msh(tag, ctl),
        f"PID|1||MR{n}{tag}^^^GENHOSP^MR||Robust^Rob",
        f"ORC|NW|PR{n}{tag}^CPOE",
        "|".join(["OBR", "1", f"PR{n}{tag}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13 + [acc]),
    ])


@dataclass
class Case:
    name: str
    build: object  # (tag) -> bytes already framed (or deliberately mis-framed)
    expected: list[str]  # ACK codes, in order
    err_code: str = ""  # table 0357 code expected in ERR (first ACK)


def _framed(text: str, encoding: str = "utf-8") -> bytes:
    return frame(text.encode(encoding))


CASES = [
    Case("no start block", lambda t: _nw(t, "NOSTART", 1).encode() + b"\x1c\r", ["AR"], "100"),
    Case("bytes before the start block", lambda t: b"\r\n\x00junk" + _framed(_nw(t, "JUNK", 2)), ["AA"]),
    Case("frame cut by a new start block", lambda t: b"\x0b" + _nw(t, "CUT", 3).encode()[:40] + _framed(_nw(t, "AFTERCUT", 4)),
         ["AR", "AA"], "100"),
    Case("missing MSH", lambda t: _framed("PID|1||X\rORC|NW|P1\rOBR|1|P1"), ["AR"], "100"),
    Case("bad version 9.9", lambda t: _framed(_msh(t, "V99", version="9.9") + "\rPID|1||X"), ["AR"], "203"),
    Case("unknown event ORM^O02", lambda t: _framed(_msh(t, "O02", "ORM^O02") + "\rPID|1||X"), ["AR"], "201"),
    Case("unknown event ADT^A99", lambda t: _framed(_msh(t, "A99", "ADT^A99") + "\rPID|1||X"), ["AR"], "201"),
    Case("unknown message type SIU^S12", lambda t: _framed(_msh(t, "SIU", "SIU^S12") + "\rPID|1||X"), ["AR"], "200"),
    Case("NW without PID", lambda t: _framed(_msh(t, "NOPID") + "\rORC|NW|P1\rOBR|1|P1||X"), ["AR"], "100"),
    Case("NW without MSH-10", lambda t: _framed(_nw(t, "X", 5).replace(f"X-{t}", "")), ["AR"], "101"),
    Case("CA for an unknown order", lambda t: _framed(_msh(t, "CAUNK") + f"\rORC|CA|NOPE{t}^CPOE|NOACC{t}"), ["AE"], "204"),
    Case("Latin-1 bytes without MSH-18", lambda t: _framed(_msh(t, "LAT", "ADT^A08") + f"\rPID|1||L{t}^^^H^MR||Müller^Jürgen",
                                                           "latin-1"), ["AA"]),
    Case("LF separators", lambda t: _framed(_nw(t, "LF", 6, "\n") + "\n"), ["AA"]),
    Case("CRLF separators", lambda t: _framed(_nw(t, "CRLF", 7, "\r\n") + "\r\n"), ["AA"]),
    Case("custom delimiters #$%\\!", lambda t: _framed("\r".join([
        _msh(t, "CUSTOM", "ORM$O01", sep="#", enc="$%\\!"),
        f"PID#1##MC{t}$$$GENHOSP$MR##Custom$Cas",
        f"ORC#NW#PC{t}$CPOE",
        "#".join(["OBR", "1", f"PC{t}$CPOE", "", "CTHEAD$CT head$L"] + [""] * 13 + [f"RC{t}"]),
    ])), ["AA"]),
    Case("escape sequences and Z-segments", lambda t: _framed(_nw(t, "ESC", 8).replace("Robust^Rob", r"Ro\F\b\S\x^Rob") +
                                                              "\rZDS|1.2.3.4^RADFLOW\rZXX|\\E\\ stuff"), ["AA"]),
    Case("batch of two", lambda t: _framed("\r".join(["BHS|^~\\&|CPOE|GENHOSP", _nw(t, "B1", 9), _nw(t, "B2", 10), "BTS|2"])),
         ["AA", "AA"]),
    Case("garbage bytes", lambda t: frame(b"\x00\xff\xfe binary \x01\x02"), ["AR"], "100"),
    Case("empty frame", lambda t: frame(b""), ["AR"], "100"),
    Case("oversized frame", lambda t: _framed(_nw(t, "BIG", 11) + "\rNTE|1||" + "x" * 2_000_000), ["AR"], "100"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_malformed_and_unusual_messages(hl7_stack: Hl7Stack, case: Case) -> None:
    s = hl7_stack
    good = _framed(_nw(s.tag, "GOOD", 99))
    # The case, then a good message, on the same connection.
    frames = 1 if len(case.expected) > 1 and case.name.startswith("batch") else len(case.expected)
    answers = await s.send_raw(case.build(s.tag) + good, frames + 1)  # type: ignore[operator]
    codes = []
    for raw in answers[:-1]:
        if raw.startswith(b"BHS"):
            codes += [line.split(b"|")[1].decode() for line in raw.split(b"\r") if line.startswith(b"MSA")]
        else:
            codes.append(ack_of(raw).code)
    assert codes == case.expected
    if case.err_code:
        assert f"|{case.err_code}^".encode() in answers[0] or f"^{case.err_code}&".encode() in answers[0]
    assert ack_of(answers[-1]).code == "AA"
    # And a new connection still gets answered.
    [fresh] = await s.send(_nw(s.tag, "FRESH", 98).encode())
    assert fresh.code == "AA"


async def test_batch_ack_is_a_batch(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [raw] = await s.send_raw(s.msg("batch_adt.hl7").join([b"\x0b", b"\x1c\r"]))
    segs = raw.split(b"\r")
    assert segs[0].startswith(b"BHS|^~\\&|RADFLOW|RAD|HIS|GENHOSP|") and segs[0].endswith(b"|BATCH77")
    assert [x for x in segs if x.startswith(b"MSA")] == [b"MSA|AA|ADTB001", b"MSA|AA|ADTB002"]
    assert segs[-1] == b"BTS|2"


async def test_ack_uses_the_senders_charset(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    msg = (_msh(s.tag, "CHARSET", "ADT^A08", "2.5") + "||||||8859/1\r" + f"PID|1||CS{s.tag}^^^H^MR||Ñandú").encode("latin-1")
    [raw] = await s.send_raw(frame(msg))
    assert raw.split(b"\r")[0].endswith(b"|8859/1")
    assert ack_of(raw).code == "AA"
