"""What an ORU's OBX rows say: report text, embedded documents, DICOM references.

- TX/FT/ST (or no value type): report text, one line per repetition.
- ED (source^type^subtype^encoding^data, HL7 tables 0191/0291/0299): an embedded
  document (a Base64 PDF, a CDA XML document sent as escaped text...). Its bytes leave
  here as `documents` (SHA-256 -> bytes) for the attachment store; the report keeps an
  `Attachment` reference (content type, size, hash).
- RP (pointer^application^type^subtype): a reference to an external document (an
  `Attachment` with a url), or to a DICOM object when the pointer is a UID.
- A row carrying a DICOM UID (OBX-3 a DCM code or named "... UID", OBX-5 a UID) goes
  to the report's imaging references, never into its text, whatever its value type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from radflow.domain.hl7.decode import unescape
from radflow.domain.hl7.parse import ErrorCode, Hl7Error, ParsedMessage, Segment
from radflow.domain.order import Attachment, ImagingReference

TEXT_VALUE_TYPES = {"TX", "FT", "ST", ""}
_UID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
# DICOM PS3.16 codes (coding scheme DCM) that name the UID an OBX row carries.
_DCM_UID_CODES = {"110180": "study", "113014": "study", "112002": "series", "110181": "sop_class", "121126": "instance"}
# HL7 table 0291 subtypes (and common variants) -> media type; CDA is XML (IHE XDS uses text/xml).
_SUBTYPES = {
    "PDF": "application/pdf",
    "RTF": "application/rtf",
    "XML": "text/xml",
    "X-HL7-CDA-LEVEL-ONE": "text/xml",
    "HTML": "text/html",
    "JPEG": "image/jpeg",
    "JPG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "PLAIN": "text/plain",
    "OCTET-STREAM": "application/octet-stream",
    "POSTSCRIPT": "application/postscript",
}
_TYPES = {"TEXT": "text/plain", "TX": "text/plain", "FT": "text/plain"}


@dataclass
class ReportContent:
    lines: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    references: list[ImagingReference] = field(default_factory=list)
    documents: dict[str, bytes] = field(default_factory=dict)  # sha256 hex -> bytes

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")


def report_content(pm: ParsedMessage, rows: list[Segment]) -> ReportContent:
    out = ReportContent()
    for index, obx in enumerate(rows, start=1):
        value_type = pm.get(obx, 2).upper()
        uid_level = _uid_level(pm, obx)
        if uid_level is not None:
            uid = pm.get(obx, 5, 1)
            if _UID.fullmatch(uid):
                ref = ImagingReference(level=uid_level, uid=uid)
                if ref not in out.references:
                    out.references.append(ref)
                continue
        if value_type in TEXT_VALUE_TYPES:
            out.lines.extend(pm.text_repetitions(obx, 5))
        elif value_type == "ED":
            _embedded(pm, obx, index, out)
        elif value_type == "RP":
            _pointer(pm, obx, out)
    return out


def _uid_level(pm: ParsedMessage, obx: Segment) -> str | None:
    """The UID level a row is labelled with (OBX-3), None when it is not a UID row."""
    code, text, system = pm.get(obx, 3, 1), pm.get(obx, 3, 2), pm.get(obx, 3, 3).upper()
    if code in _DCM_UID_CODES and system in ("DCM", ""):
        return _DCM_UID_CODES[code]
    label = f"{code} {text}".lower()
    if "uid" not in label:
        return None
    for word, level in (("study", "study"), ("series", "series"), ("sop class", "sop_class"), ("instance", "instance")):
        if word in label:
            return level
    return "uid"


def _title(pm: ParsedMessage, obx: Segment) -> tuple[str, str]:
    code, text, system = pm.get(obx, 3, 1), pm.get(obx, 3, 2), pm.get(obx, 3, 3)
    return text or code, "^".join((code, text, system)).rstrip("^")


def _raw_value(pm: ParsedMessage, obx: Segment) -> str:
    """OBX-5 as sent (escapes unresolved), repetitions re-joined: documents may carry stray ~."""
    if len(obx) <= 5:
        return ""
    return pm.enc.repetition.join(rep if isinstance(rep, str) else str(rep) for rep in obx[5])


def _embedded(pm: ParsedMessage, obx: Segment, index: int, out: ReportContent) -> None:
    where, row = "OBX-5", f"OBX {index}: "
    parts = _raw_value(pm, obx).split(pm.enc.component, 4)
    if len(parts) < 5:
        raise Hl7Error(ErrorCode.DATA_TYPE, row + "ED value needs source^type^subtype^encoding^data", where)
    _source, kind, subtype, encoding, raw = parts
    # The data is text (escaped delimiters inside, e.g. a CDA document); resolve the escapes first.
    data_text = unescape(raw, pm.enc, pm.codec)
    encoding = unescape(encoding, pm.enc, pm.codec).strip().upper()
    try:
        if encoding == "BASE64":
            # Line breaks (\.br\ or \X0D0A\ in the message) may wrap the data; split() drops them in C.
            data = base64.b64decode("".join(data_text.split()), validate=True)
        elif encoding == "HEX":
            data = bytes.fromhex("".join(data_text.split()))
        elif encoding in ("A", "NONE", ""):
            data = data_text.encode("utf-8")
        else:
            raise Hl7Error(ErrorCode.TABLE_VALUE_NOT_FOUND, row + f"unsupported ED encoding {encoding!r} (Base64, Hex, A)", where)
    except (binascii.Error, ValueError) as err:
        raise Hl7Error(ErrorCode.DATA_TYPE, row + f"ED data is not valid {encoding}: {err}", where) from err
    if not data:
        return
    sha = hashlib.sha256(data).hexdigest()
    title, code = _title(pm, obx)
    content_type = media_type(unescape(kind, pm.enc, pm.codec), unescape(subtype, pm.enc, pm.codec), data)
    sha1 = base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")  # FHIR R4 Attachment.hash
    attachment = Attachment(sha256=sha, content_type=content_type, size=len(data), sha1_b64=sha1, title=title, code=code)
    if attachment not in out.attachments:
        out.attachments.append(attachment)
    out.documents[sha] = data


def _pointer(pm: ParsedMessage, obx: Segment, out: ReportContent) -> None:
    pointer = pm.get(obx, 5, 1)
    if not pointer:
        return
    if _UID.fullmatch(pointer):
        ref = ImagingReference(level="uid", uid=pointer)
        if ref not in out.references:
            out.references.append(ref)
        return
    title, code = _title(pm, obx)
    content_type = media_type(pm.get(obx, 5, 3), pm.get(obx, 5, 4), b"")
    out.attachments.append(Attachment(content_type=content_type, title=title, code=code, url=pointer))


def media_type(kind: str, subtype: str, data: bytes) -> str:
    sub = subtype.strip().upper()
    if "/" in sub:
        return sub.lower()
    if sub in _SUBTYPES:
        return _SUBTYPES[sub]
    if data.startswith(b"%PDF"):
        return "application/pdf"
    if data.lstrip()[:1] == b"<" and b"ClinicalDocument" in data[:4096]:
        return "text/xml"
    return _TYPES.get(kind.strip().upper(), "application/octet-stream")


# Outbound (ORU OBX-5 of type ED): media type -> (type of data, subtype), tables 0191/0291.
def ed_type(content_type: str) -> tuple[str, str]:
    main = content_type.split(";")[0].strip().lower()
    for sub, media in _SUBTYPES.items():
        if media == main and sub not in ("JPG", "X-HL7-CDA-LEVEL-ONE"):
            kind = "IM" if main.startswith("image/") else "TEXT" if main.startswith("text/") else "AP"
            return kind, sub
    return "AP", "octet-stream"
