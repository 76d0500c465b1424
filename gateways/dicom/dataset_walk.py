"""Walk an encoded dataset to its last byte before a C-STORE is answered Success.

A modality that gets Success deletes or stops resending the instance, so Success must
mean "we hold a whole dataset". pydicom's reader accepts a dataset whose last value is
cut short (it returns the shorter value) or that simply ends early, so it cannot decide
that. This walker follows the encoding itself: every element's declared length must fit
in what is left, undefined-length sequences and encapsulated pixel data must reach their
delimiters, and the last element must end exactly at the end of the bytes. Values are
skipped by length (never decoded), so the cost is a few microseconds per instance
whatever its size; the requested top-level values come back raw for the header.

Defined-length sequences are skipped whole (their declared length must fit); their
items are not opened. Little and big endian, implicit and explicit VR; a deflated
dataset is inflated first by the caller.
"""

from __future__ import annotations

import struct

_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
MAX_DEPTH = 16  # nested undefined-length sequences; real objects stay far below


class DatasetError(ValueError):
    """The bytes are not one whole, well-formed dataset; the message says where."""


class _Codec:
    def __init__(self, little: bool) -> None:
        order = "<" if little else ">"
        self.tag = struct.Struct(order + "HH")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "I")


_LE, _BE = _Codec(True), _Codec(False)


def walk_dataset(raw: bytes, want: frozenset[int], *, implicit_vr: bool, little_endian: bool = True,
                 note: frozenset[int] = frozenset()) -> tuple[dict[int, bytes], set[int]]:
    """(raw values of the top-level `want` tags, which `note` tags are present); DatasetError if not whole."""
    found: dict[int, bytes] = {}
    present: set[int] = set()
    codec = _LE if little_endian else _BE
    _walk(raw, 0, len(raw), implicit_vr, codec, want, note, found, present, depth=0)
    return found, present


def _name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _walk(raw: bytes, pos: int, end: int, implicit: bool, codec: _Codec, want: frozenset[int], note: frozenset[int],
          found: dict[int, bytes], present: set[int], depth: int) -> int:
    """Elements from `pos`; at top level up to `end`, in an item up to its delimiter."""
    top = depth == 0
    while pos < end:
        if pos + 8 > end:
            raise DatasetError(f"truncated: {end - pos} stray bytes after the last element")
        group, elem = codec.tag.unpack_from(raw, pos)
        tag = (group << 16) | elem
        if tag == _ITEM_END and not top:
            return pos + 8
        if group == 0xFFFE:
            raise DatasetError(f"unexpected delimiter {_name(tag)} at byte {pos}")
        if implicit:
            vr = b""
            length = codec.u32.unpack_from(raw, pos + 4)[0]
            pos += 8
        else:
            vr = raw[pos + 4:pos + 6]
            if not (vr.isalpha() and vr.isupper()):
                raise DatasetError(f"{_name(tag)}: invalid VR at byte {pos + 4}")
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    raise DatasetError(f"truncated: {_name(tag)} header cut short")
                length = codec.u32.unpack_from(raw, pos + 8)[0]
                pos += 12
            else:
                length = codec.u16.unpack_from(raw, pos + 6)[0]
                pos += 8
        if length == _UNDEFINED:
            if not (implicit or vr in (b"SQ", b"UN") or (tag == PIXEL_DATA and vr in (b"OB", b"OW"))):
                raise DatasetError(f"{_name(tag)}: undefined length on VR {vr.decode('ascii')}")
            if depth >= MAX_DEPTH:
                raise DatasetError(f"sequences nested deeper than {MAX_DEPTH}")
            # An undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2).
            inner_implicit = implicit or vr == b"UN"
            pos = _items(raw, pos, end, inner_implicit, _LE if vr == b"UN" else codec, depth + 1)
        else:
            if length > end - pos:
                raise DatasetError(f"truncated: {_name(tag)} needs {length} bytes, {end - pos} left")
            if top and tag in want:
                found[tag] = raw[pos:pos + length]
            pos += length
        if top and tag in note:
            present.add(tag)
    if not top:
        raise DatasetError("truncated: an item has no delimiter")
    return pos


def _items(raw: bytes, pos: int, end: int, implicit: bool, codec: _Codec, depth: int) -> int:
    """Items (or pixel fragments) of an undefined-length element, up to (FFFE,E0DD)."""
    while pos + 8 <= end:
        group, elem = codec.tag.unpack_from(raw, pos)
        tag = (group << 16) | elem
        length = codec.u32.unpack_from(raw, pos + 4)[0]
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise DatasetError(f"expected an item, found {_name(tag)} at byte {pos - 8}")
        if length == _UNDEFINED:
            pos = _walk(raw, pos, end, implicit, codec, frozenset(), frozenset(), {}, set(), depth)
        elif length > end - pos:
            raise DatasetError(f"truncated: an item needs {length} bytes, {end - pos} left")
        else:
            pos += length
    raise DatasetError("truncated: a sequence has no delimiter")
