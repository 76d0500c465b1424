"""Small building blocks shared by the resource mappings: references, codings, times."""

from __future__ import annotations

from datetime import UTC, datetime

from radflow.domain.definitions import OrderStatus
from radflow.domain.order import OrderState, PersonName
from radflow.domain.transitions import effective_status

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier types (MR, PLAC, FILL, ACSN, VN)
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service sections (RAD)
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"  # Encounter.class
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ENDPOINT_CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"

Refs = dict[str, str]  # resource type -> "Type/id" (server ids, when the caller knows them)

_IDENTIFIER_TYPE_DISPLAY = {
    "MR": "Medical record number",
    "PLAC": "Placer Identifier",
    "FILL": "Filler Identifier",
    "ACSN": "Accession ID",
    "VN": "Visit number",
}


def identifier(system: str, value: str, type_code: str = "") -> dict:
    out: dict = {}
    if type_code:
        out["type"] = {
            "coding": [{"system": V2_0203, "code": type_code, "display": _IDENTIFIER_TYPE_DISPLAY[type_code]}]
        }
    out["system"] = system
    out["value"] = value
    return out


def reference(kind: str, refs: Refs | None, ident: dict | None, display: str = "") -> dict | None:
    """A server reference when the caller resolved one, else a logical (identifier) reference.

    Logical references keep resources meaningful without server ids (the read facade,
    and a client that links by identifier); None when neither is available.
    """
    out: dict = {}
    if refs and refs.get(kind):
        out["reference"] = refs[kind]
    elif ident:
        out["type"] = kind
        out["identifier"] = {k: v for k, v in ident.items() if k in ("type", "system", "value")}
    else:
        if not display:
            return None
        out["type"] = kind
    if display:
        out["display"] = display
    return out


def fhir_datetime(value: datetime | None) -> str | None:
    """FHIR dateTime/instant: always with seconds and a zone (naive means UTC here)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    spec = "milliseconds" if value.microsecond else "seconds"
    text = value.isoformat(timespec=spec)
    return text.replace("+00:00", "Z")


def fhir_date(hl7_date: str) -> str | None:
    """HL7 DT/DTM (YYYY[MM[DD[...]]]) -> FHIR date; None when it is not a plausible date."""
    digits = hl7_date.strip()[:8]
    if not digits.isdigit() or len(digits) not in (4, 6, 8):
        return None
    parts = [digits[0:4], digits[4:6], digits[6:8]]
    parts = [p for p in parts if p]
    if len(parts) > 1 and not 1 <= int(parts[1]) <= 12:
        return None
    if len(parts) > 2 and not 1 <= int(parts[2]) <= 31:
        return None
    return "-".join(parts)


def human_name(name: PersonName) -> dict | None:
    out: dict = {}
    if name.family:
        out["family"] = name.family
    given = [g for g in (name.given, name.middle) if g]
    if given:
        out["given"] = given
    if name.prefix:
        out["prefix"] = [name.prefix]
    if name.suffix:
        out["suffix"] = [name.suffix]
    if not out:
        return None
    return {"use": "official", **out}


def display_name(name: PersonName) -> str:
    """'Given Middle Family' for Reference.display (kept out of logs by the callers)."""
    return " ".join(p for p in (name.prefix, name.given, name.middle, name.family, name.suffix) if p)


def procedure_code(state: OrderState, cfg) -> dict | None:
    proc = state.order.procedure
    if not proc.code and not proc.text:
        return None
    out: dict = {}
    if proc.code:
        coding = {"system": cfg.code_system(proc.coding_system), "code": proc.code}
        if proc.text:
            coding["display"] = proc.text
        out["coding"] = [coding]
    if proc.text:
        out["text"] = proc.text
    return out


def clinical_status(state: OrderState) -> OrderStatus:
    """Status without the NEEDS_ATTENTION overlay: a stuck delivery is not a clinical state."""
    return effective_status(state)


def prune(resource: dict) -> dict:
    """Drop None/empty values so optional elements are absent rather than null."""
    return {k: v for k, v in resource.items() if v not in (None, "", [], {})}
