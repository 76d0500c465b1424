"""What an identifier or name must look like before it reaches Temporal or the worklist.

The accession becomes a workflow id, the MRN and placer number become search attributes
that visibility queries quote, and all of them end up in DICOM attributes with fixed
value representations (PS3.5 table 6.2-1). A value that none of these can hold must be
refused at the edge with the reason (HL7 AR, HTTP 4xx), before any Temporal call: a NUL
in an MRN once made the visibility query fail and the sender got "order store
unavailable, retry" for a message that could never succeed, and an accession with a NUL
was stored as an order.

Limits follow DICOM where the value is a DICOM attribute: AccessionNumber SH (16),
PatientID / IssuerOfPatientID / placer and filler numbers LO (64), StudyInstanceUID UI
(64, digits and dots), person name components 64. Station AE titles and procedure step
ids are bounded generously (64): fitting them to their DICOM VRs is the worklist's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radflow.domain.order import OrderData, Patient, PatientKey, PersonName


@dataclass(frozen=True)
class Rule:
    max_chars: int
    backslash: bool = False  # allowed? DICOM uses "\" between values of a multi-valued attribute
    pattern: re.Pattern[str] | None = None


TOO_LONG = "more than"  # in every length reason, so callers can tell "too long" (HL7 104) from "invalid" (102)
ACCESSION = Rule(16)
LONG_ID = Rule(64)  # LO: MRN, issuer, placer/filler numbers
NAME_PART = Rule(64, backslash=True)
CONTROL_ID = Rule(199, backslash=True)  # HL7 MSH-10 (ST, 199 from v2.7); part of Temporal update ids
UID = Rule(64, pattern=re.compile(r"[0-9]+(\.[0-9]+)*", re.ASCII))


_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_character(value: str) -> str | None:
    """The first control character (C0, DEL, C1, or a bidi override that can disguise text) in value.

    Other format characters stay allowed: ZWNJ/ZWJ belong to the spelling of Persian or
    Indic names.
    """
    for ch in value:
        if ch < " " or "\x7f" <= ch <= "\x9f" or ch in _BIDI_CONTROLS:
            return ch
    return None


def problem(label: str, value: str, rule: Rule) -> str | None:
    """Why `value` cannot be used as `label`, or None. Empty values are the caller's business."""
    if not value:
        return None
    if len(value) > rule.max_chars:
        return f"{label} has {len(value)} characters, {TOO_LONG} {rule.max_chars}"
    ch = control_character(value)
    if ch is not None:
        return f"{label} contains the control character U+{ord(ch):04X}"
    if not rule.backslash and "\\" in value:
        return f"{label} contains a backslash"
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        return f"{label} is not a valid value"
    return None


def name_problem(label: str, name: PersonName) -> str | None:
    for part in ("family", "given", "middle", "prefix", "suffix"):
        found = problem(f"{label} ({part})", getattr(name, part), NAME_PART)
        if found:
            return found
    return None


def patient_problems(patient: Patient | PatientKey, where: str = "patient") -> list[tuple[str, str]]:
    """(field, reason) pairs; field is "mrn", "issuer" or "name"."""
    checks = [("mrn", problem(f"{where} identifier", patient.mrn, LONG_ID)),
              ("issuer", problem(f"{where} identifier issuer", patient.issuer, LONG_ID))]
    if isinstance(patient, Patient):
        checks.append(("name", name_problem(f"{where} name", patient.name)))
    return [(f, reason) for f, reason in checks if reason]


def order_problems(order: OrderData) -> list[tuple[str, str]]:
    """(field, reason) for every order value that cannot be stored; field names are the model's."""
    checks = [
        ("accession", problem("accession number", order.accession, ACCESSION)),
        ("placer_number", problem("placer order number", order.placer_number, LONG_ID)),
        ("filler_number", problem("filler order number", order.filler_number, LONG_ID)),
        ("study_instance_uid", problem("study instance UID", order.study_instance_uid, UID)),
        ("station_ae", problem("scheduled station AE title", order.schedule.station_ae, LONG_ID)),
        ("sps_id", problem("scheduled procedure step id", order.schedule.sps_id, LONG_ID)),
        ("requested_procedure_id", problem("requested procedure id", order.schedule.requested_procedure_id, LONG_ID)),
        ("procedure", problem("procedure code", order.procedure.code, LONG_ID)),
        ("referring_physician", name_problem("referring physician", order.referring_physician)),
        ("ordering_provider", name_problem("ordering provider", order.ordering_provider.name)),
    ]
    found = [(f, reason) for f, reason in checks if reason]
    return found + [(f"patient.{f}", reason) for f, reason in patient_problems(order.patient)]
