"""Reversible mapping between accession numbers and FHIR logical ids.

A FHIR id is `[A-Za-z0-9\\-\\.]{1,64}`; an accession is any DICOM SH value (up to 16
characters, `_`, spaces, `/` and non-ASCII allowed), e.g. `FON_0d70c6c8`. Letters, digits
and `-` are kept as they are (so the usual accession is its own id); every other character
becomes `.` + two hex digits per UTF-8 byte (`.` itself is `.2E`). The escape is canonical,
so one accession has exactly one id and an id decodes to at most one accession.
"""

from __future__ import annotations

import re

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_KEPT = re.compile(r"[A-Za-z0-9\-]")
_ESCAPED = re.compile(r"\.([0-9A-F]{2})")


class NotAFhirId(ValueError):
    """The accession cannot be written as a FHIR id within 64 characters."""


def fhir_id(accession: str) -> str:
    out = "".join(c if _KEPT.fullmatch(c) else "".join(f".{b:02X}" for b in c.encode("utf-8")) for c in accession)
    if not FHIR_ID.fullmatch(out):
        raise NotAFhirId(f"accession of {len(accession)} characters does not fit a FHIR id once escaped")
    return out


def accession_from_id(resource_id: str) -> str | None:
    """The accession an id names; None for anything `fhir_id` never produces."""
    if not FHIR_ID.fullmatch(resource_id):
        return None
    raw = bytearray()
    i = 0
    while i < len(resource_id):
        if resource_id[i] == ".":
            m = _ESCAPED.match(resource_id, i)
            if m is None:
                return None
            raw.append(int(m.group(1), 16))
            i = m.end()
        else:
            raw += resource_id[i].encode("ascii")
            i += 1
    try:
        accession = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return accession if fhir_id(accession) == resource_id else None
    except NotAFhirId:
        return None
