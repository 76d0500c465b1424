"""Hypothesis strategies for the HL7 fuzz tests: raw bytes, and real fixture messages mutated
with the bytes that broke radflow before (delimiters, NUL and other controls, MLLP framing
bytes, non-ASCII and non-decimal digits, long runs)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DATA = Path(__file__).resolve().parent / "data" / "hl7"
SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.hl7"))]

# Bounded for CI: each property runs a few hundred examples; the deadline is the per-input
# time bound (generous: the machine is shared), not a benchmark.
FUZZ = settings(max_examples=int(os.environ.get("RADFLOW_FUZZ_EXAMPLES", "300")), deadline=2000,
                suppress_health_check=[HealthCheck.too_slow], derandomize=not os.environ.get("RADFLOW_FUZZ_RANDOM"))

_INTERESTING = [b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\r\n", b"\x00", b"\x1b", b"\x0b", b"\x1c", b"\xff",
                b"\xc3\xa9", b"\xe2\x80\xae", "\u00b2".encode(), "\u0663".encode(), b"MSH", b'""', b"\\.sp999999\\",
                b"\\X00\\", b"\\.br\\", b"9" * 4400]

_chunk = st.one_of(st.sampled_from(_INTERESTING), st.binary(max_size=8),
                   st.builds(lambda b, n: b * n, st.sampled_from(_INTERESTING[:8]), st.integers(1, 3000)))


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    """A fixture message with a few insertions, deletions and replacements."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            data[pos:pos] = draw(_chunk)
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        else:
            chunk = draw(_chunk)
            data[pos : pos + len(chunk)] = chunk
    return bytes(data)


hl7_input = st.one_of(mutated_message(), st.binary(max_size=3000))
