"""Size limits for one inbound HL7 message, checked in one linear pass before parsing.

Every limit bounds the work (and memory) a single message can cost the gateway, the
workflow history and the ORU delivered later: a report whose OBX-5 held 300,000
repetition separators once parsed, got AA and then cost the worker minutes of CPU and
gigabytes while its ORU was built. A message over a limit is refused with AR (the
sender must not resend it unchanged) and an ERR naming the field. docs/limits.md lists
the defaults and their settings.

The frame size itself is enforced earlier, by the MLLP reader (gateways/mllp.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from radflow.domain.hl7.decode import SEGMENT_SEPARATOR, EncodingChars
from radflow.domain.hl7.parse import ErrorCode, Hl7Error

_REPORT_FIELD = ("OBX", 5)  # report text and embedded documents: bounded by max_report_chars instead


@dataclass(frozen=True)
class Hl7Limits:
    max_segments: int = 5_000  # segments per message (incl. MSH)
    max_field_chars: int = 65_536  # characters in one field (OBX-5 excepted: see max_report_chars)
    max_repetitions: int = 1_000  # repetitions of one field
    max_obx: int = 2_000  # OBX segments per message
    max_report_chars: int = 1_000_000  # characters of all OBX-5 values of one message together
    max_report_lines: int = 10_000  # lines of one report's text (each becomes an OBX of the ORU we send)
    # Delimiters (| ^ ~ & and the escape character) in one message: the parser's and the
    # mapper's work grows with them (~10 us each here), not with the bytes. A typical ORM has
    # ~150; 2,000 OBX of report text ~25,000; a 1 MiB frame of "|" would have a million.
    max_delimiters: int = 50_000
    max_messages: int = 1_000  # messages in one frame (a batch, or several MSH): each may cost Temporal calls

    @classmethod
    def from_settings(cls, settings: Any) -> Hl7Limits:
        """Duck-typed on radflow.infra.settings.Settings (domain does not import radflow)."""
        d = cls()
        return cls(**{name: int(getattr(settings, f"hl7_{name}", getattr(d, name))) for name in d.__dataclass_fields__})


def check_limits(text: str, enc: EncodingChars, limits: Hl7Limits) -> None:
    """Raise Hl7Error (-> AR) for the first limit the message exceeds; O(len(text))."""
    segments = text.count(SEGMENT_SEPARATOR) + 1
    if segments > limits.max_segments:
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE,
                       f"message has {segments} segments, more than the limit of {limits.max_segments}", "")
    delimiters = sum(text.count(ch) for ch in (enc.field, enc.component, enc.repetition, enc.subcomponent, enc.escape))
    if delimiters > limits.max_delimiters:
        raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE,
                       f"message has {delimiters} delimiters, more than the limit of {limits.max_delimiters}", "")
    obx = 0
    report_chars = 0
    for segment in text.split(SEGMENT_SEPARATOR):
        fields = segment.split(enc.field)
        name = fields[0]
        if name == "OBX":
            obx += 1
            if obx > limits.max_obx:
                raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, f"more than {limits.max_obx} OBX segments", "OBX")
        for number, value in enumerate(fields[1:], start=1):
            # MSH-1 is the separator itself, so MSH field numbers are one higher.
            field_no = number + 1 if name == "MSH" else number
            where = f"{name[:3]}-{field_no}"
            if (name, field_no) == _REPORT_FIELD:
                report_chars += len(value)
                if report_chars > limits.max_report_chars:
                    raise Hl7Error(ErrorCode.VALUE_TOO_LONG,
                                   f"report text longer than {limits.max_report_chars} characters", where)
            elif len(value) > limits.max_field_chars:
                raise Hl7Error(ErrorCode.VALUE_TOO_LONG,
                               f"{where} has {len(value)} characters, more than the limit of {limits.max_field_chars}",
                               where)
            if name != "MSH" or field_no > 2:
                reps = value.count(enc.repetition) + 1
                if reps > limits.max_repetitions:
                    raise Hl7Error(ErrorCode.VALUE_TOO_LONG,
                                   f"{where} has {reps} repetitions, more than the limit of {limits.max_repetitions}",
                                   where)
