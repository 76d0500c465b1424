"""Segment grammar checked before any effect: which segments a message may carry, and
what a line that is not a segment is (a bare CR inside a field).

Segment ids and message structures come from hl7apy's HL7 v2.3-v2.8 tables (the union
over versions, so an older or newer sender's optional segments are accepted); only the
data is used, the slow hl7apy parser stays off the hot path. Z-segments are always allowed.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

import hl7apy

from radflow.domain.hl7.decode import EncodingChars
from radflow.domain.hl7.parse import ErrorCode, Hl7Error

# Message type^trigger -> hl7apy structure(s) whose segments the message may carry. ORM
# and OMI share the order mapping, so either's segments are accepted in both.
STRUCTURES: dict[str, tuple[str, ...]] = {
    "ADT^A01": ("ADT_A01",),
    "ADT^A04": ("ADT_A01",),
    "ADT^A08": ("ADT_A01",),
    "ADT^A31": ("ADT_A01",),
    "ADT^A40": ("ADT_A39",),
    "ORM^O01": ("ORM_O01", "OMI_O23"),
    "OMI^O23": ("OMI_O23", "ORM_O01"),
    "ORU^R01": ("ORU_R01",),
}
# Allowed in every message although not in every version's structure (notes, software).
ALWAYS_ALLOWED = frozenset({"MSH", "NTE", "SFT", "UAC"})
_SEGMENT_ID = r"[A-Z][A-Z0-9]{2}"


def _versions() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(hl7apy.__path__) if m.name.startswith("v2_"))


@cache
def known_segments() -> frozenset[str]:
    names: set[str] = set()
    for version in _versions():
        names |= set(importlib.import_module(f"hl7apy.{version}.segments").SEGMENTS)
    names.discard("ANYHL7SEGMENT")
    return frozenset(n for n in names if re.fullmatch(_SEGMENT_ID, n))


def _segments_of(node: object, out: set[str]) -> set[str]:
    # hl7apy structures: (name, definition, cardinality, "SEG" | "GRP" | ...) nested in tuples.
    if isinstance(node, (tuple, list)):
        if len(node) == 4 and node[3] == "SEG" and isinstance(node[0], str):
            out.add(node[0])
            return out
        for child in node:
            _segments_of(child, out)
    return out


@cache
def allowed_segments(label: str) -> frozenset[str] | None:
    """Segments a `TYPE^EVENT` message may carry (Z-segments aside); None = not a handled message."""
    structures = STRUCTURES.get(label)
    if structures is None:
        return None
    names: set[str] = set(ALWAYS_ALLOWED)
    for version in _versions():
        messages = importlib.import_module(f"hl7apy.{version}.messages").MESSAGES
        for structure in structures:
            if structure in messages:
                _segments_of(messages[structure], names)
    return frozenset(names)


def load_tables() -> None:
    """Read hl7apy's tables now (about a second) rather than on the first message."""
    known_segments()
    for label in STRUCTURES:
        allowed_segments(label)


def is_segment_line(line: str, enc: EncodingChars) -> bool:
    """A line that starts a segment: a valid id that is known or a Z-segment, then a field separator or the end."""
    seg_id = line[:3]
    if not re.fullmatch(_SEGMENT_ID, seg_id) or (len(line) > 3 and line[3] != enc.field):
        return False
    return seg_id[0] == "Z" or seg_id in known_segments()


# Free-text fields where a line break is content: a bare CR there is repaired.
TEXT_FIELDS = frozenset({("OBX", 5), ("NTE", 3)})


def repair_segments(text: str, enc: EncodingChars) -> tuple[str, list[str]]:
    """Join lines that are not segments back into the field a bare CR split.

    In a free-text field (TEXT_FIELDS) the CR was a line break: it is kept as an escaped
    one (`\\.br\\`) and the repair is reported. In any other field (a name, an id, a
    date) there is no right guess (space? nothing?), so the message is refused with the
    field's location. A line that looks like a segment but is neither known nor a
    Z-segment is refused too: a segment we do not know or a split field, either way
    accepting it could lose data.
    """
    lines = text.split("\r")
    out: list[str] = [lines[0]]
    repairs: list[str] = []
    line_break = f"{enc.escape}.br{enc.escape}"
    for line in lines[1:]:
        if is_segment_line(line, enc):
            out.append(line)
            continue
        if re.fullmatch(_SEGMENT_ID, line[:3]) and (len(line) == 3 or line[3] == enc.field):
            raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, f"unknown segment {line[:3]}", line[:3])
        previous = out[-1]
        seg_id = previous[:3]
        field_no = previous.count(enc.field) + (1 if seg_id == "MSH" else 0)
        if (seg_id, field_no) not in TEXT_FIELDS:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE,
                f"segment separator (bare CR) inside {seg_id}-{field_no}: the field would be cut",
                f"{seg_id}-{field_no}",
            )
        repairs.append(f"{seg_id}-{field_no}: a bare CR inside the field was kept as a line break")
        out[-1] = previous + line_break + line
    return "\r".join(out), repairs


def check_grammar(names: list[str], label: str) -> None:
    """Refuse (AR) a handled message carrying a segment its structure does not allow.

    `names` are the segment ids in order (MSH first). Unhandled message types are left
    to the mapping, which answers them with their own error code.
    """
    allowed = allowed_segments(label)
    if allowed is None:
        return
    for seq, name in enumerate(names[1:], start=2):
        if name == "MSH" or (name not in allowed and not name.startswith("Z")):
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE,
                f"segment {name} (segment {seq}) is not allowed in {label}",
                name,
            )
    first = {"ORU^R01": "OBR", "ORM^O01": "ORC", "OMI^O23": "ORC"}.get(label)
    if first:
        # Order-level segments before their ORC/OBR would belong to no order and be lost
        # (an OBR before any ORC is the mapping's "OBR without its ORC").
        seen_head = False
        for name in names[1:]:
            if name == first:
                seen_head = True
            elif name in ("OBX", "TQ1", "IPC") and not seen_head:
                raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, f"{name} before the first {first} of {label}", name)
