"""Report documents out: OBX ED in the forwarded ORU, presentedForm in the DiagnosticReport."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from radflow.domain.definitions import ReportStatus
from radflow.domain.fhir.report import diagnostic_report
from radflow.domain.hl7.mapping import map_message
from radflow.domain.hl7.oru import build_oru
from radflow.domain.hl7.parse import parse_message
from radflow.domain.order import Attachment, ImagingReference
from radflow.domain.fhir.config import FhirMappingConfig
from tests.domain.fhir_states import reported, v24_order

PDF = (Path(__file__).resolve().parent.parent / "data" / "reports" / "report.pdf").read_bytes()
SHA = hashlib.sha256(PDF).hexdigest()
SHA1 = base64.b64encode(hashlib.sha1(PDF).digest()).decode()
ATT = Attachment(sha256=SHA, content_type="application/pdf", size=len(PDF), sha1_b64=SHA1, title="Report PDF",
                 code="18748-4^Report PDF^LN")
LINK = Attachment(content_type="application/pdf", url="https://ris.example/doc/1", title="Link")
REFS = [ImagingReference(level="study", uid="1.2.3.4")]
CFG = FhirMappingConfig(identifier_base="https://rf.test/fhir")


def test_forwarded_oru_carries_the_pdf_as_ed_and_reads_back_identically() -> None:
    state = reported(v24_order(), ReportStatus.FINAL, text="", attachments=[ATT, LINK], imaging_references=REFS)
    text, _ = build_oru(state, documents={SHA: PDF})
    obx = [s for s in text.split("\r") if s.startswith("OBX|")]
    assert obx[0].startswith("OBX|1|ED|18748-4^Report PDF^LN||^AP^PDF^Base64^")
    assert obx[1].startswith("OBX|2|RP|") and "https://ris.example/doc/1^^AP^PDF" in obx[1]
    assert obx[2].startswith("OBX|3|HD|110180^Study Instance UID^DCM||1.2.3.4|")
    # What we send, radflow itself reads back: same bytes, same references.
    (cmd,) = map_message(parse_message(text))
    report = cmd.event.report
    assert cmd.documents == {SHA: PDF} and report.imaging_references == REFS
    assert [a.url for a in report.attachments] == ["", "https://ris.example/doc/1"]


def test_oru_without_the_document_bytes_is_an_error_not_a_silent_drop() -> None:
    state = reported(v24_order(), ReportStatus.FINAL, text="", attachments=[ATT])
    try:
        build_oru(state, documents={})
    except KeyError as err:
        assert SHA in str(err)
    else:
        raise AssertionError("built an ORU without its document")


def test_presented_form_has_data_size_and_sha1_hash() -> None:
    state = reported(v24_order(), ReportStatus.FINAL, text="Normal.", attachments=[ATT, LINK])
    res = diagnostic_report(state, CFG, None, {SHA: PDF})
    text_form, pdf_form, link_form = res["presentedForm"]
    assert text_form["contentType"].startswith("text/plain")
    assert pdf_form == {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(), "size": len(PDF),
                        "hash": SHA1, "title": "Report PDF"}
    assert link_form == {"contentType": "application/pdf", "url": "https://ris.example/doc/1", "title": "Link"}


def test_presented_form_without_bytes_still_names_size_and_hash() -> None:
    res = diagnostic_report(reported(v24_order(), ReportStatus.FINAL, text="", attachments=[ATT]), CFG)
    assert res["presentedForm"] == [{"contentType": "application/pdf", "size": len(PDF), "hash": SHA1, "title": "Report PDF"}]
    assert "conclusion" not in res
