"""Regenerates the synthetic report documents and the ORU^R01 messages that embed them.

Everything is invented: a one-page PDF written by hand (valid xref), a CDA R2 document
with characters that are HL7 delimiters (& ^ | ~ \\), and ORUs carrying them as OBX ED
(Base64 PDF; CDA as escaped text, encoding A) next to DICOM UID rows:
    python tests/data/reports/make_reports.py
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HL7 = HERE.parent / "hl7"
sys.path.insert(0, str(HERE.parents[2]))

from radflow.domain.hl7.decode import escape  # noqa: E402

STUDY_UID = "1.2.826.0.1.3680043.2.1125.1001"
SERIES_UID = "1.2.826.0.1.3680043.2.1125.1001.1"


def tiny_pdf(text: str) -> bytes:
    """A minimal one-page PDF (offsets computed, so readers accept it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


CDA = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <id root="1.2.826.0.1.3680043.2.1125.77" extension="ACC1001"/>
  <code code="18748-4" codeSystem="2.16.840.1.113883.6.1" displayName="Diagnostic imaging study"/>
  <title>CT head &amp; neck report</title>
  <component><structuredBody><component><section>
    <title>Findings</title>
    <text>No haemorrhage | ventricles 3^4 cm ~ stable; path C:\\reports\\1001 &lt;ok&gt;</text>
  </section></component></structuredBody></component>
  <documentationOf><serviceEvent><id root="{STUDY_UID}"/></serviceEvent></documentationOf>
</ClinicalDocument>
"""


def header(control: str) -> list[str]:
    return [
        f"MSH|^~\\&|DICTATION|GENHOSP|RADFLOW|RAD|20240305170000||ORU^R01^ORU_R01|{control}|P|2.5.1",
        "PID|1||MRN10001^^^GENHOSP^MR||Testpatient^Alpha^Q",
        "ORC|RE|PL1001^CPOE|ACC1001^RIS",
        "OBR|1|PL1001^CPOE|ACC1001^RIS|CTHEAD^CT head without contrast^L|||20240305150000"
        + "|" * 18 + "F" + "|" * 7 + "0999&Reader&Rachel",
    ]


UID_ROWS = [
    f"OBX|{{n}}|ST|113014^Study Instance UID^DCM||{STUDY_UID}||||||F",
    f"OBX|{{n}}|RP|112002^Series Instance UID^DCM||{SERIES_UID}||||||F",
]


def rows(*lines: str) -> list[str]:
    return [line.replace("{n}", str(i)) for i, line in enumerate(lines, start=1)]


def main() -> None:
    pdf = tiny_pdf("Synthetic report ACC1001: no acute findings.")
    (HERE / "report.pdf").write_bytes(pdf)
    (HERE / "report_cda.xml").write_text(CDA, encoding="utf-8", newline="\n")
    b64 = base64.b64encode(pdf).decode("ascii")
    messages = {
        # A PDF and UID rows, no text at all: the PDF is the report.
        "oru_r01_f_pdf_v251.hl7": header("ORUPDF1") + rows(
            *UID_ROWS, f"OBX|{{n}}|ED|18748-4^Report PDF^LN||^AP^PDF^Base64^{b64}||||||F"),
        # Text plus a CDA document sent as escaped text (encoding A).
        "oru_r01_f_cda_v251.hl7": header("ORUCDA1") + rows(
            "OBX|{n}|TX|&GDT^Report||FINDINGS: see CDA document.||||||F",
            f"OBX|{{n}}|ED|18748-4^CDA report^LN||^TEXT^XML^A^{escape(CDA)}||||||F", *UID_ROWS),
        # Only UID rows: nothing to read, a final report must be refused.
        "oru_r01_f_uids_only_v251.hl7": header("ORUUID1") + rows(*UID_ROWS),
    }
    for name, segments in messages.items():
        (HL7 / name).write_bytes(("\r".join(segments) + "\r").encode("utf-8"))


if __name__ == "__main__":
    main()
