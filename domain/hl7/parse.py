"""Hot-path parsing with python-hl7 (`hl7.parse`, ~0.65 ms per ORM here; hl7apy's parser
takes ~15 ms and would cap ingest), plus 1-based field access that the mapping reads.

Field access follows the HL7 numbering: `get(seg, 3, 1)` is PID-3.1, and for MSH the
numbering includes MSH-1 (the field separator), exactly as python-hl7 stores it.
Values come back unescaped; `""` (explicit null: "delete this value") reads as "" and
`is_null()` tells the two apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from enum import IntEnum
from typing import TYPE_CHECKING

import hl7
from hl7.exceptions import ParseException

from radflow.domain.hl7.decode import EncodingChars, unescape

if TYPE_CHECKING:
    from radflow.domain.hl7.limits import Hl7Limits

NULL = '""'
# Versions radflow accepts: v2.2 up to v2.9 (ORM^O01 from 2.2, OMI^O23 from 2.4/2.5).
_VERSION = re.compile(r"^2\.([2-9])(\.\d{1,3})?$", re.ASCII)


class ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes), used in ERR."""

    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    VALUE_TOO_LONG = 104  # from v2.6 on; older receivers read the text of ERR
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    DUPLICATE_KEY = 205
    RECORD_LOCKED = 206
    INTERNAL_ERROR = 207


ERROR_TEXT = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.VALUE_TOO_LONG: "Value too long",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.RECORD_LOCKED: "Application record locked",
    ErrorCode.INTERNAL_ERROR: "Application internal error",
}


class Hl7Error(Exception):
    """A message we reject (AR): the table 0357 code, a reason, and where (e.g. "PID-3")."""

    def __init__(self, code: ErrorCode, reason: str, location: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.location = location


Segment = hl7.Segment


@dataclass(frozen=True)
class FieldSpec:
    """A field address like "OBR-18" or "IPC-9.1" (site conventions in settings)."""

    segment: str
    field: int
    component: int = 1
    subcomponent: int = 1

    @classmethod
    def parse(cls, spec: str) -> FieldSpec:
        m = re.fullmatch(r"([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?(?:\.(\d+))?", spec.strip().upper())
        if not m:
            raise ValueError(f"bad HL7 field address {spec!r} (expected e.g. OBR-18 or IPC-9.1)")
        return cls(m.group(1), int(m.group(2)), int(m.group(3) or 1), int(m.group(4) or 1))

    def __str__(self) -> str:
        return f"{self.segment}-{self.field}" + (f".{self.component}" if self.component != 1 else "")


def _leaf(node: object, indices: tuple[int, ...]) -> str:
    """Walk python-hl7 containers (repetition, component, subcomponent), 1-based.

    A leaf reached early answers for index 1 at every deeper level (HL7's rule that
    "A" equals "A^" equals "A&"); any other deeper index is absent.
    """
    for i in indices:
        if isinstance(node, str):
            return node if i == 1 else ""
        if i > len(node):  # type: ignore[arg-type]
            return ""
        node = node[i - 1]  # type: ignore[index]
    while not isinstance(node, str):
        if not node:
            return ""
        node = node[0]  # type: ignore[index]
    return node


@dataclass
class ParsedMessage:
    text: str
    msg: hl7.Message
    enc: EncodingChars
    codec: str = "utf-8"
    repairs: list[str] = field(default_factory=list)  # bare CRs joined back (domain.hl7.grammar)
    _by_name: dict[str, list[Segment]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for seg in self.msg:
            self._by_name.setdefault(segment_name(seg), []).append(seg)

    # ------------------------------------------------------------ segments
    def segments(self, name: str) -> list[Segment]:
        return self._by_name.get(name, [])

    def first(self, name: str) -> Segment | None:
        found = self._by_name.get(name)
        return found[0] if found else None

    def all_segments(self) -> list[Segment]:
        return list(self.msg)

    # ------------------------------------------------------------ values
    def raw(self, seg: Segment | None, field_no: int, component: int = 1, sub: int = 1, rep: int = 1) -> str:
        """The value as sent (escapes unresolved, `""` kept)."""
        if seg is None or field_no >= len(seg):
            return ""
        return _leaf(seg[field_no], (rep, component, sub))

    def field_text(self, seg: Segment | None, field_no: int) -> str:
        """The whole field as sent (all repetitions and components): `""` only for a null field."""
        if seg is None or field_no >= len(seg):
            return ""
        return str(seg[field_no]).rstrip(self.enc.component + self.enc.subcomponent + self.enc.repetition)

    def get(self, seg: Segment | None, field_no: int, component: int = 1, sub: int = 1, rep: int = 1) -> str:
        value = self.raw(seg, field_no, component, sub, rep)
        if value == NULL:
            return ""
        return unescape(value, self.enc, self.codec).strip()

    def is_null(self, seg: Segment | None, field_no: int, component: int = 1) -> bool:
        return self.raw(seg, field_no, component) == NULL

    def repetitions(self, seg: Segment | None, field_no: int) -> int:
        if seg is None or field_no >= len(seg):
            return 0
        return len(seg[field_no])

    def text_repetitions(self, seg: Segment | None, field_no: int) -> list[str]:
        """A text field (TX/FT/ST) per repetition, components kept literally, unescaped.

        Text types have no components, but senders leave unescaped ^ in report text;
        re-joining keeps their words instead of dropping everything after the caret.
        """
        if seg is None or field_no >= len(seg):
            return []
        out = []
        for rep in seg[field_no]:
            value = rep if isinstance(rep, str) else str(rep)
            out.append("" if value == NULL else unescape(value, self.enc, self.codec))
        return out

    def at(self, spec: FieldSpec | str) -> str:
        if isinstance(spec, str):
            spec = FieldSpec.parse(spec)
        return self.get(self.first(spec.segment), spec.field, spec.component, spec.subcomponent)

    # ------------------------------------------------------------ header
    @property
    def msh(self) -> Segment:
        return self.msg[0]

    @property
    def control_id(self) -> str:
        return self.get(self.msh, 10)

    @property
    def version(self) -> str:
        return self.get(self.msh, 12)

    @property
    def message_type(self) -> str:
        return self.get(self.msh, 9, 1).upper()

    @property
    def trigger(self) -> str:
        return self.get(self.msh, 9, 2).upper()

    @property
    def structure(self) -> str:
        return self.get(self.msh, 9, 3).upper()

    @property
    def declared_charset(self) -> str:
        return self.get(self.msh, 18)

    @property
    def sending_application(self) -> str:
        return self.get(self.msh, 3)

    @cached_property
    def message_key(self) -> str:
        """Resend identity: sender (MSH-3, MSH-4) + MSH-10 + a hash of the message with MSH-7
        blanked. Senders reuse MSH-10 (counters reset, one id per batch), so the control id
        alone would take a different message for a resend; a byte-identical resend whose
        only change is its send time keeps the same key."""
        first, sep, rest = self.text.partition("\r")
        parts = first.split(self.enc.field)
        if len(parts) > 6:
            parts[6] = ""
        digest = hashlib.sha256((self.enc.field.join(parts) + sep + rest).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        sender = f"{self.get(self.msh, 3)}^{self.get(self.msh, 4)}"
        if len(sender) > 64:  # the key becomes a Temporal update id: keep it short (MSH-10 is capped)
            sender = "#" + hashlib.sha256(sender.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"{sender}:{self.control_id}:{digest}"

    @property
    def label(self) -> str:
        return f"{self.message_type}^{self.trigger}"


def segment_name(seg: Segment) -> str:
    return _leaf(seg[0], (1, 1, 1)) if len(seg) else ""


def parse_message(text: str, codec: str = "utf-8", limits: Hl7Limits | None = None) -> ParsedMessage:
    """Parse one message (normalised text starting with MSH) or raise Hl7Error (-> AR).

    `limits` (default: Hl7Limits()) are checked first, in one linear pass, so no
    message costs more than its size allows.
    """
    from radflow.domain.hl7.limits import Hl7Limits, check_limits  # limits.py raises our Hl7Error: import here, not at the top

    if not text.startswith("MSH") or len(text) < 8:
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "message does not start with an MSH segment", "MSH")
    enc = EncodingChars.from_msh(text)
    if not enc.valid:
        raise Hl7Error(ErrorCode.DATA_TYPE, "invalid encoding characters in MSH-1/MSH-2", "MSH-2")
    check_limits(text, enc, limits or Hl7Limits())
    from radflow.domain.hl7.grammar import repair_segments  # grammar builds on this module

    text, repairs = repair_segments(text, enc)
    try:
        msg = hl7.parse(text)
    except (ParseException, IndexError, ValueError, AssertionError) as err:
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, f"unparseable message: {clip(str(err))}", "MSH") from err
    pm = ParsedMessage(text=text, msg=msg, enc=enc, codec=codec, repairs=repairs)
    _check_header(pm)
    return pm


def clip(value: str, limit: int = 40) -> str:
    """A sender's value quoted in a reason, cut so a 60,000-character field is not echoed back."""
    return value if len(value) <= limit else value[:limit] + f"... ({len(value)} characters)"


def _check_header(pm: ParsedMessage) -> None:
    if not pm.message_type or not pm.trigger:
        raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "MSH-9 message type and trigger event are required", "MSH-9")
    if not pm.control_id:
        raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10 message control id is required", "MSH-10")
    version = pm.version
    if not version:
        raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "MSH-12 version id is required", "MSH-12")
    if not _VERSION.match(version):
        raise Hl7Error(ErrorCode.UNSUPPORTED_VERSION, f"unsupported HL7 version {clip(version)!r} (2.2 to 2.9 accepted)",
                       "MSH-12")


def version_tuple(version: str) -> tuple[int, ...]:
    """"2.5.1" -> (2, 5, 1); stops at the first part that is not 1-4 ASCII digits (never raises:
    it also reads the version of messages being rejected, e.g. "2.5²" or 4,300 digits)."""
    parts = []
    for p in version.split(".")[:4]:
        if not (p.isascii() and p.isdigit() and len(p) <= 4):
            break
        parts.append(int(p))
    return tuple(parts)
