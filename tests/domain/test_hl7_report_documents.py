"""ORU OBX ED/RP and UID rows (domain/hl7/observations.py): documents kept, UIDs out of the text."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from radflow.domain.definitions import ReportStatus
from radflow.domain.hl7.mapping import CommandKind
from radflow.domain.order import ImagingReference
from tests.domain.hl7_fixtures import commands

REPORTS = Path(__file__).resolve().parent.parent / "data" / "reports"
STUDY, SERIES = "1.2.826.0.1.3680043.2.1125.1001", "1.2.826.0.1.3680043.2.1125.1001.1"


def _report(name: str):
    (cmd,) = commands(name)
    assert cmd.kind == CommandKind.ORDER_EVENT, cmd.reason
    assert cmd.event is not None and cmd.event.report is not None
    return cmd, cmd.event.report


def test_base64_pdf_becomes_an_attachment_and_uid_rows_imaging_references() -> None:
    pdf = (REPORTS / "report.pdf").read_bytes()
    cmd, report = _report("oru_r01_f_pdf_v251.hl7")
    assert report.status == ReportStatus.FINAL
    assert report.text == ""  # the UID rows are not text
    assert report.imaging_references == [ImagingReference(level="study", uid=STUDY), ImagingReference(level="series", uid=SERIES)]
    (att,) = report.attachments
    sha = hashlib.sha256(pdf).hexdigest()
    assert (att.sha256, att.content_type, att.size, att.title) == (sha, "application/pdf", len(pdf), "Report PDF")
    assert att.sha1_b64 == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    assert att.code == "18748-4^Report PDF^LN"
    assert cmd.documents == {sha: pdf}
    assert report.has_content()


def test_cda_with_escaped_delimiters_is_kept_byte_for_byte() -> None:
    cda = (REPORTS / "report_cda.xml").read_bytes()
    cmd, report = _report("oru_r01_f_cda_v251.hl7")
    assert report.text == "FINDINGS: see CDA document."
    (att,) = report.attachments
    assert att.content_type == "text/xml"
    assert cmd.documents[att.sha256] == cda  # & ^ | ~ \ and newlines all came back
    assert [r.uid for r in report.imaging_references] == [STUDY, SERIES]


def test_only_uid_rows_leave_a_report_without_content() -> None:
    _, report = _report("oru_r01_f_uids_only_v251.hl7")
    assert report.text == "" and report.attachments == [] and len(report.imaging_references) == 2
    assert not report.has_content()


def _oru(*obx: str):
    from radflow.domain.hl7.mapping import map_message
    from radflow.domain.hl7.parse import parse_message

    text = "\r".join([
        "MSH|^~\\&|D|H|RADFLOW|RAD|20240305170000||ORU^R01|C1|P|2.5.1",
        "PID|1||M1^^^H^MR",
        "OBR|1|P1|A1|X|||20240305150000" + "|" * 18 + "F",
        *obx,
    ])
    return map_message(parse_message(text))


def test_bad_base64_is_refused_with_its_location() -> None:
    (cmd,) = _oru("OBX|1|ED|X^Doc||^AP^PDF^Base64^not*base64||||||F")
    assert cmd.kind == CommandKind.UNSUPPORTED and cmd.location == "OBX-5"
    assert cmd.reason.startswith("OBX 1: ED data is not valid BASE64")


def test_hex_encoded_document_and_rp_pointer() -> None:
    (cmd,) = _oru(
        "OBX|1|ED|X^Scan||^IM^JPEG^Hex^FFD8FFE0||||||F",
        "OBX|2|RP|Y^Report link||https://ris.example/doc/1^RIS^AP^PDF||||||F",
        "OBX|3|RP|Z^Key image||1.2.3.4.5^PACS^IM^DICOM||||||F",
    )
    report = cmd.event.report
    jpeg, link = report.attachments
    assert (jpeg.content_type, jpeg.size) == ("image/jpeg", 4) and cmd.documents[jpeg.sha256] == bytes.fromhex("FFD8FFE0")
    assert (link.url, link.content_type, link.sha256) == ("https://ris.example/doc/1", "application/pdf", "")
    assert report.imaging_references == [ImagingReference(level="uid", uid="1.2.3.4.5")]


def test_text_rows_that_look_like_uids_but_are_not_labelled_stay_text() -> None:
    (cmd,) = _oru("OBX|1|TX|&GDT^Report||Protocol 1.2 revised.~1.2.3||||||F")
    assert cmd.event.report.text == "Protocol 1.2 revised.\n1.2.3"
    assert cmd.event.report.imaging_references == []


def test_base64_wrapped_in_escaped_line_breaks_decodes() -> None:
    pdf = (REPORTS / "report.pdf").read_bytes()
    b64 = base64.b64encode(pdf).decode()
    wrapped = "\\.br\\".join(b64[i:i + 76] for i in range(0, len(b64), 76))  # MIME-style 76-column lines
    (cmd,) = _oru(f"OBX|1|ED|X^Doc||^AP^PDF^Base64^{wrapped}||||||F")
    assert list(cmd.documents.values()) == [pdf]
