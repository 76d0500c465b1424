"""Original-mode ACKs, built by hand: a few string joins per message instead of a
message-building library on the hot path.

The ACK speaks the sender's dialect: its delimiters (MSH-1/MSH-2), its version (MSH-12)
and its charset (MSH-18), with sender and receiver swapped. AE/AR carry an ERR segment:
ERR-2/ERR-3/ERR-4/ERR-8 from v2.5 on, ERR-1 (ELD) before. A frame without a usable MSH
still gets an AR (MSA-2 empty) so the sender learns why instead of timing out.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from radflow.domain.hl7.decode import SEGMENT_SEPARATOR, EncodingChars, escape, normalise_segments, unescape
from radflow.domain.hl7.parse import ERROR_TEXT, ErrorCode, version_tuple

DEFAULT_VERSION = "2.5.1"


class AckCode(StrEnum):
    AA = "AA"  # accepted: durably applied (or a resend of something applied)
    AE = "AE"  # application error: parsed, could not apply now; the sender may retry
    AR = "AR"  # rejected: malformed or unsupported; resending the same bytes will not help


# Enhanced mode (MSH-15/MSH-16 present): the accept ("commit") acknowledgment says the
# same thing in its own codes. radflow commits a message by applying it in Temporal, so CA
# is sent only after the event is durable, CE when it could not be (retry), CR when it never
# can be. Application acknowledgments are not sent separately: the commit ACK already
# carries the application outcome, and radflow has no return channel to the sender.
COMMIT_CODES = {AckCode.AA: "CA", AckCode.AE: "CE", AckCode.AR: "CR"}
# HL7 table 0155 (accept/application acknowledgment conditions).
ACK_CONDITIONS = ("AL", "NE", "ER", "SU")


def new_control_id() -> str:
    return uuid.uuid4().hex[:20].upper()


def hl7_now(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


@dataclass(frozen=True)
class AckHeader:
    """What an ACK echoes from the original MSH, as sent (already in the sender's escaping)."""

    enc: EncodingChars = EncodingChars()
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    trigger: str = ""
    processing_id: str = ""
    version: str = ""
    charset: str = ""
    accept_ack_type: str = ""  # MSH-15
    application_ack_type: str = ""  # MSH-16

    @property
    def enhanced(self) -> bool:
        """HL7 v2: enhanced acknowledgment mode when MSH-15 or MSH-16 is valued, else original."""
        return bool(self.accept_ack_type or self.application_ack_type)

    def wants_ack(self, code: AckCode) -> bool:
        """Whether to answer at all: always in original mode; per MSH-15 in enhanced mode.

        An empty or unknown MSH-15 next to a valued MSH-16 counts as AL: an MLLP sender
        waiting for an answer it will never get is worse than one ACK too many.
        """
        if not self.enhanced:
            return True
        condition = self.accept_ack_type if self.accept_ack_type in ACK_CONDITIONS else "AL"
        return {"AL": True, "NE": False, "ER": code != AckCode.AA, "SU": code == AckCode.AA}[condition]

    @classmethod
    def from_text(cls, text: str) -> AckHeader:
        """Best effort from the first MSH segment of (possibly broken) text; never raises."""
        start = text.find("MSH")
        while start > 0 and text[start - 1] not in "\r\n":
            start = text.find("MSH", start + 3)
        if start < 0 or len(text) < start + 4:
            return cls()
        line = text[start:].split("\r", 1)[0].split("\n", 1)[0]
        enc = EncodingChars.from_msh(line)
        if not enc.valid:  # nothing can be read reliably; answer in the standard delimiters
            return cls()
        parts = line.split(enc.field)

        def msh(n: int) -> str:  # parts[0] = "MSH", parts[1] = MSH-2
            return parts[n - 1].strip() if len(parts) >= n else ""

        first_rep = msh(18).split(enc.repetition, 1)[0]
        return cls(
            enc=enc,
            sending_application=msh(3),
            sending_facility=msh(4),
            receiving_application=msh(5),
            receiving_facility=msh(6),
            control_id=msh(10),
            trigger=msh(9).split(enc.component)[1] if enc.component in msh(9) else "",
            processing_id=msh(11),
            version=_usable_version(msh(12).split(enc.component, 1)[0]),
            charset=first_rep,
            accept_ack_type=msh(15).upper()[:2],
            application_ack_type=msh(16).upper()[:2],
        )


_VERSION_SHAPE = re.compile(r"2\.[0-9]{1,2}(\.[0-9]{1,2})?", re.ASCII)


def _usable_version(version: str) -> str:
    """The sender's MSH-12 if it looks like a v2 version, else "" (the ACK then says 2.5.1):
    an ACK must not repeat 4,300 digits or a byte it could not decode as its version."""
    return version if _VERSION_SHAPE.fullmatch(version) else ""


def _modern(version: str) -> bool:
    v = version_tuple(version)
    return not v or v >= (2, 5)


def _location(location: str, enc: EncodingChars) -> list[str]:
    """"PID-3" / "MSH-9.2" -> [segment, sequence, field, (component...)]."""
    if not location:
        return []
    seg, _, rest = location.partition("-")
    numbers = rest.split(".") if rest else []
    out = [seg, "1"] + numbers[:1]
    if len(numbers) > 1:
        out += ["1"] + numbers[1:]  # field repetition 1, then component
    return out


def build_ack(
    header: AckHeader,
    code: AckCode,
    text: str = "",
    error: ErrorCode | int | None = None,
    location: str = "",
    *,
    application: str = "RADFLOW",
    facility: str = "RADFLOW",
    control_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """One ACK message, segments joined by \\r (no trailing separator)."""
    enc = header.enc
    f, c = enc.field, enc.component
    version = header.version or DEFAULT_VERSION
    trigger = header.trigger
    if not trigger:
        message_type = "ACK"
    elif version_tuple(version) >= (2, 3, 1):
        message_type = f"ACK{c}{trigger}{c}ACK"
    else:
        message_type = f"ACK{c}{trigger}"
    fields = [
        header.receiving_application or application,
        header.receiving_facility or facility,
        header.sending_application,
        header.sending_facility,
        hl7_now(now),
        "",
        message_type,
        control_id or new_control_id(),
        header.processing_id or "P",
        version,
    ]
    if header.charset:
        fields += ["", "", "", "", "", header.charset]
    segments = ["MSH" + f + enc.msh2 + f + f.join(fields)]
    msa = ["MSA", COMMIT_CODES[code] if header.enhanced else code.value, header.control_id]
    if text:
        msa.append(escape(text, enc))
    segments.append(f.join(msa))
    if code != AckCode.AA:
        err_code = ErrorCode(error) if error is not None else (
            ErrorCode.INTERNAL_ERROR if code == AckCode.AE else ErrorCode.SEGMENT_SEQUENCE
        )
        segments.append(_err_segment(enc, version, err_code, text, location))
    return SEGMENT_SEPARATOR.join(segments)


def _err_segment(enc: EncodingChars, version: str, code: ErrorCode, text: str, location: str) -> str:
    f, c, s = enc.field, enc.component, enc.subcomponent
    where = _location(location, enc)
    if _modern(version):
        fields = [
            "ERR",
            "",  # ERR-1 (ELD) is withdrawn from v2.5
            c.join(where),  # ERR-2 error location
            c.join([str(int(code)), ERROR_TEXT[code], "HL70357"]),  # ERR-3
            "E",  # ERR-4 severity
            "", "", "",  # ERR-5..7
            escape(text, enc),  # ERR-8 user message
        ]
        return f.join(fields).rstrip(f)
    eld = (where[:3] + [""] * 3)[:3]
    eld.append(s.join([str(int(code)), ERROR_TEXT[code], "HL70357"]))
    return "ERR" + f + c.join(eld)


def build_batch(acks: list[str], batch_header: str, enc: EncodingChars, *, application: str = "RADFLOW",
                facility: str = "RADFLOW", now: datetime | None = None) -> str:
    """BHS + the ACKs + BTS (count); BHS-12 echoes the sender's batch control id (BHS-11)."""
    f = enc.field
    parts = batch_header.split(f) if batch_header else []

    def bhs(n: int) -> str:
        return parts[n - 1] if len(parts) >= n else ""

    fields = [bhs(5) or application, bhs(6) or facility, bhs(3), bhs(4), hl7_now(now), "", "", "", new_control_id(), bhs(11)]
    head = "BHS" + f + enc.msh2 + f + f.join(fields).rstrip(f)
    return SEGMENT_SEPARATOR.join([head, *acks, f"BTS{f}{len(acks)}"])


@dataclass(frozen=True)
class AckReceived:
    code: str  # MSA-1: AA/AE/AR (or CA/CE/CR in enhanced mode)
    control_id: str  # MSA-2: the control id of the message it acknowledges
    text: str  # MSA-3 / ERR-8 reason, unescaped

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")

    @property
    def rejected(self) -> bool:
        return self.code in ("AR", "CR")


def read_ack(text: str) -> AckReceived | None:
    """MSA of an ACK we received (None when there is no MSA segment)."""
    text = normalise_segments(text)
    enc = EncodingChars.from_msh(text)
    reason = ""
    msa: list[str] | None = None
    for segment in text.split(SEGMENT_SEPARATOR):
        parts = segment.split(enc.field)
        if parts[0] == "MSA" and msa is None:
            msa = parts
        elif parts[0] == "ERR" and len(parts) > 8 and parts[8]:
            reason = reason or parts[8]
    if msa is None:
        return None
    msa += [""] * (4 - len(msa))
    return AckReceived(code=msa[1].strip().upper(), control_id=msa[2].strip(), text=unescape(msa[3] or reason, enc))
