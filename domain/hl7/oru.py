"""Outbound ORU^R01 (v2.5.1) for a report version, assembled as plain ER7 text.

The message has one fixed shape (MSH, PID, [PV1], ORC, OBR, one OBX per line of text,
then one per document and imaging reference), so there is no structure to discover:
each segment is a list of already-escaped fields joined by "|", and the work is linear
in the report size. hl7apy built the same message before, but its element tree grew
super-linearly with the number of OBX groups (2 s for 250 lines, 41 s for 5,000 here;
30 s for 20,000 line breaks in the field), which stalled the worker.
tests/domain/test_hl7_oru.py checks what we build against hl7apy's v2.5.1 ORU_R01
structure. Values are escaped with decode.escape, so free text with |^~\\& survives.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime

from radflow.domain.definitions import ReportStatus
from radflow.domain.hl7.ack import hl7_now
from radflow.domain.hl7.decode import SEGMENT_SEPARATOR, EncodingChars, escape
from radflow.domain.hl7.observations import ed_type
from radflow.domain.order import Attachment, OrderState, PersonName

VERSION = "2.5.1"
RESULT_STATUS = {ReportStatus.PRELIMINARY: "P", ReportStatus.FINAL: "F", ReportStatus.CORRECTED: "C"}
# LOINC 18782-3 "Radiology Study observation (narrative)" names the report text lines.
REPORT_TEXT_CODE = "18782-3^Radiology Study observation (narrative)^LN"
# LOINC 18748-4 "Diagnostic imaging study" for a document row that arrived without OBX-3.
DOCUMENT_CODE = "18748-4^Diagnostic imaging study^LN"
# DICOM PS3.16 codes for the UID rows; levels without a code keep only the name.
_UID_CODES = {
    "study": "110180^Study Instance UID^DCM",
    "series": "112002^Series Instance UID^DCM",
    "sop_class": "110181^SOP Class UID^DCM",
    "instance": "^SOP Instance UID",
    "uid": "^DICOM UID",
}
_ENC = EncodingChars()


def _dtm(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        return value.strftime("%Y%m%d%H%M%S")
    return value.strftime("%Y%m%d%H%M%S%z")


def _e(value: str) -> str:
    return escape(value, _ENC)


def _xpn(name: PersonName) -> str:
    return "^".join(_e(p) for p in (name.family, name.given, name.middle, name.suffix, name.prefix)).rstrip("^")


def _cnn(name: PersonName, ident: str = "") -> str:
    parts = [ident, name.family, name.given, name.middle, name.suffix, name.prefix]
    return "&".join(_e(p) for p in parts).rstrip("&")


def oru_control_id(accession: str, version: int, status: str) -> str:
    """Deterministic per report version, so a retried delivery is recognisable as a resend."""
    digest = hashlib.sha1(f"{accession}:{version}:{status}".encode()).hexdigest()[:18].upper()
    return f"RF{digest}"


def build_oru(
    state: OrderState,
    *,
    sending_application: str = "RADFLOW",
    sending_facility: str = "RADFLOW",
    receiving_application: str = "EHR",
    receiving_facility: str = "",
    now: datetime | None = None,
    documents: Mapping[str, bytes] | None = None,
) -> tuple[str, str]:
    """(ER7 text with \\r separators, MSH-10) for the order's current report.

    `documents` holds the bytes of the report's attachments by SHA-256 (read from the
    attachment store by the caller); each goes out as an OBX ED row, Base64-encoded.
    """
    report = state.report
    if report is None:
        raise ValueError("order has no report")
    order = state.order
    status = RESULT_STATUS[report.status]
    control_id = oru_control_id(order.accession, report.version, status)

    segments = [
        _segment("MSH", {
            2: _ENC.msh2, 3: _e(sending_application), 4: _e(sending_facility), 5: _e(receiving_application),
            6: _e(receiving_facility), 7: _dtm(now) if now is not None else hl7_now(), 9: "ORU^R01^ORU_R01",
            10: control_id, 11: "P", 12: VERSION, 18: "UNICODE UTF-8",
        }),
    ]
    p = order.patient
    segments.append(_segment("PID", {
        1: "1",
        3: f"{_e(p.mrn)}^^^{_e(p.issuer)}^MR" if p.issuer else f"{_e(p.mrn)}^^^^MR",
        5: _xpn(p.name), 7: _e(p.birth_date), 8: _e(p.sex),
    }))
    if order.visit.patient_class:
        segments.append(_segment("PV1", {2: _e(order.visit.patient_class), 19: _e(order.visit.visit_number)}))
    placer = _e(order.placer_number)
    segments.append(_segment("ORC", {1: "RE", 2: placer, 3: _e(order.accession), 5: "CM"}))
    proc = order.procedure
    interpreter = _cnn(report.interpreter)
    segments.append(_segment("OBR", {
        1: "1", 2: placer, 3: _e(order.accession),
        4: "^".join(_e(v) for v in (proc.code or "UNKNOWN", proc.text, proc.coding_system)).rstrip("^"),
        7: _dtm(report.observed_at), 18: _e(order.accession), 24: _e(order.schedule.modality), 25: status,
        32: interpreter if interpreter.strip("&") else "",
    }))
    # One OBX per line; all but OBX-1 and OBX-5 are the same for every line, so they are joined once.
    template = _segment("OBX", {1: "{i}", 2: "TX", 3: REPORT_TEXT_CODE, 4: "1", 5: "{v}", 11: status,
                                14: _dtm(report.observed_at)})
    head, _, rest = template.partition("{i}")
    middle, _, tail = rest.partition("{v}")
    # CRLF or CR line ends (FHIR/API text) are one line break, not a line plus an escaped one.
    lines = report.text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if report.text else []
    segments.extend(f"{head}{index}{middle}{_e(line)}{tail}" for index, line in enumerate(lines, start=1))
    extra = [("ED" if a.sha256 else "RP", _attachment_value(a, documents or {}), a.code or DOCUMENT_CODE)
             for a in report.attachments]
    extra += [("HD", _e(ref.uid), _UID_CODES.get(ref.level, _UID_CODES["uid"])) for ref in report.imaging_references]
    for index, (value_type, value, code) in enumerate(extra, start=len(lines) + 1):
        segments.append(_segment("OBX", {
            1: str(index), 2: value_type, 3: "^".join(_e(part) for part in code.split("^")), 5: value, 11: status,
        }))
    return SEGMENT_SEPARATOR.join(segments), control_id


def _segment(name: str, fields: dict[int, str]) -> str:
    """One segment from {field number: escaped value}; empty trailing fields are left out.

    For MSH the numbers count MSH-1 (the separator itself), as in the standard.
    """
    first = 2 if name == "MSH" else 1
    last = max((n for n, v in fields.items() if v), default=first - 1)
    return "|".join([name, *(fields.get(n, "") for n in range(first, last + 1))])


def _attachment_value(attachment: Attachment, documents: Mapping[str, bytes]) -> str:
    kind, subtype = ed_type(attachment.content_type)
    if not attachment.sha256:  # RP: pointer^application^type^subtype
        return f"{_e(attachment.url)}^^{kind}^{subtype}"
    data = documents.get(attachment.sha256)
    if data is None:
        raise KeyError(f"document {attachment.sha256} of the report was not provided")
    # Base64's alphabet holds no HL7 delimiter: the data needs no escaping.
    return f"^{kind}^{subtype}^Base64^{base64.b64encode(data).decode('ascii')}"

