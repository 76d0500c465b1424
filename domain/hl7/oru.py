"""Outbound ORU^R01 (v2.5.1) for a report version, built with hl7apy.

hl7apy earns its place here: it knows the v2.5.1 ORU_R01 structure (groups, segment
order), which matters for what we emit, and building one message per report costs
milliseconds off the hot path. Values are escaped by us (decode.escape) before hl7apy
sees them, so free text with |^~\\& survives intact.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime

from hl7apy.core import Message

from domain.definitions import ReportStatus
from domain.hl7.decode import EncodingChars, escape
from domain.hl7.observations import ed_type
from domain.order import Attachment, OrderState, PersonName

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

    msg = Message("ORU_R01", version=VERSION)
    msh = msg.msh
    msh.msh_3 = _e(sending_application)
    msh.msh_4 = _e(sending_facility)
    msh.msh_5 = _e(receiving_application)
    if receiving_facility:
        msh.msh_6 = _e(receiving_facility)
    if now is not None:
        msh.msh_7 = _dtm(now)
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control_id
    msh.msh_11 = "P"
    msh.msh_18 = "UNICODE UTF-8"

    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    patient = result.add_group("ORU_R01_PATIENT")
    pid = patient.pid
    p = order.patient
    pid.pid_1 = "1"
    pid.pid_3 = f"{_e(p.mrn)}^^^{_e(p.issuer)}^MR" if p.issuer else f"{_e(p.mrn)}^^^^MR"
    name = _xpn(p.name)
    if name:
        pid.pid_5 = name
    if p.birth_date:
        pid.pid_7 = _e(p.birth_date)
    if p.sex:
        pid.pid_8 = _e(p.sex)
    if order.visit.patient_class:
        pv1 = patient.add_group("ORU_R01_VISIT").pv1
        pv1.pv1_2 = _e(order.visit.patient_class)
        if order.visit.visit_number:
            pv1.pv1_19 = _e(order.visit.visit_number)

    obs = result.add_group("ORU_R01_ORDER_OBSERVATION")
    orc = obs.orc
    orc.orc_1 = "RE"
    if order.placer_number:
        orc.orc_2 = _e(order.placer_number)
    orc.orc_3 = _e(order.accession)
    orc.orc_5 = "CM"
    obr = obs.obr
    obr.obr_1 = "1"
    if order.placer_number:
        obr.obr_2 = _e(order.placer_number)
    obr.obr_3 = _e(order.accession)
    proc = order.procedure
    obr.obr_4 = "^".join(_e(v) for v in (proc.code or "UNKNOWN", proc.text, proc.coding_system)).rstrip("^")
    if report.observed_at:
        obr.obr_7 = _dtm(report.observed_at)
    obr.obr_18 = _e(order.accession)
    if order.schedule.modality:
        obr.obr_24 = _e(order.schedule.modality)
    obr.obr_25 = status
    interpreter = _cnn(report.interpreter)
    if interpreter.strip("&"):
        obr.obr_32 = interpreter
    lines = report.text.split("\n") if report.text else []
    index = 0
    for index, line in enumerate(lines, start=1):
        obx = obs.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1 = str(index)
        obx.obx_2 = "TX"
        obx.obx_3 = REPORT_TEXT_CODE
        obx.obx_4 = "1"
        if line:
            obx.obx_5 = _e(line)
        obx.obx_11 = status
        if report.observed_at:
            obx.obx_14 = _dtm(report.observed_at)
    extra = [("ED" if a.sha256 else "RP", _attachment_value(a, documents or {}), a.code or DOCUMENT_CODE)
             for a in report.attachments]
    extra += [("HD", _e(ref.uid), _UID_CODES.get(ref.level, _UID_CODES["uid"])) for ref in report.imaging_references]
    for index, (value_type, value, code) in enumerate(extra, start=index + 1):
        obx = obs.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1 = str(index)
        obx.obx_2 = value_type
        obx.obx_3 = "^".join(_e(part) for part in code.split("^"))
        obx.obx_5 = value
        obx.obx_11 = status
    return msg.to_er7(), control_id


def _attachment_value(attachment: Attachment, documents: Mapping[str, bytes]) -> str:
    kind, subtype = ed_type(attachment.content_type)
    if not attachment.sha256:  # RP: pointer^application^type^subtype
        return f"{_e(attachment.url)}^^{kind}^{subtype}"
    data = documents.get(attachment.sha256)
    if data is None:
        raise KeyError(f"document {attachment.sha256} of the report was not provided")
    # Base64's alphabet holds no HL7 delimiter: the data needs no escaping.
    return f"^{kind}^{subtype}^Base64^{base64.b64encode(data).decode('ascii')}"

