"""Identifier systems and endpoints the FHIR mappings use (plain values, no I/O).

Every identifier system is a URI. The defaults hang off one configurable base so a site
can swap `http://radflow.example/fhir` for its own namespace (or OIDs) without code
changes; a system set explicitly wins over the derived default.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from pydantic import BaseModel, Field, model_validator

# DICOM UIDs as FHIR identifiers: system urn:dicom:uid, value urn:oid:<uid> (R4 ImagingStudy).
DICOM_UID_SYSTEM = "urn:dicom:uid"
OID_PREFIX = "urn:oid:"
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

# HL7 v2 coding systems (OBR-4.3, table 0396) that have a well-known FHIR system URI.
KNOWN_CODE_SYSTEMS = {
    "LN": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "RADLEX": "http://radlex.org",
    "RID": "http://radlex.org",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
}


class FhirMappingConfig(BaseModel):
    identifier_base: str = "http://radflow.example/fhir"
    # Assigning authority (PID-3.4) -> system, for sites whose authorities have OIDs/URIs.
    mrn_systems: dict[str, str] = Field(default_factory=dict)
    placer_system: str = ""
    filler_system: str = ""
    accession_system: str = ""
    visit_system: str = ""
    station_system: str = ""  # scheduled station AE titles (Task.owner, ServiceRequest.performer)
    practitioner_system: str = ""  # ordering provider ids (ORC-12 / OBR-16)
    task_system: str = ""
    report_system: str = ""
    endpoint_system: str = ""
    procedure_system_base: str = ""  # local coding systems: <base>/<HL7 coding system>
    code_systems: dict[str, str] = Field(default_factory=dict)  # HL7 coding system -> URI, beats the known ones
    dicomweb_base_url: str = "http://localhost:8042/dicom-web"
    endpoint_name: str = "radflow-dicomweb"  # business identifier value of the one Endpoint
    report_language: str = "en"

    @model_validator(mode="after")
    def _derive_systems(self) -> FhirMappingConfig:
        base = self.identifier_base.rstrip("/")
        for field, suffix in (
            ("placer_system", "placer"),
            ("filler_system", "filler"),
            ("accession_system", "accession"),
            ("visit_system", "visit"),
            ("station_system", "station"),
            ("practitioner_system", "practitioner"),
            ("task_system", "procedure-step"),
            ("report_system", "report"),
            ("endpoint_system", "endpoint"),
            ("procedure_system_base", "procedure"),
        ):
            if not getattr(self, field):
                setattr(self, field, f"{base}/{suffix}")
        return self

    # ---------------------------------------------------------------- MRN
    def mrn_system(self, issuer: str) -> str:
        """Identifier system of an MRN from its assigning authority (OIDs become urn:oid:)."""
        if issuer in self.mrn_systems:
            return self.mrn_systems[issuer]
        if _OID.match(issuer):
            return OID_PREFIX + issuer
        base = self.identifier_base.rstrip("/") + "/mrn"
        return f"{base}/{quote(issuer, safe='')}" if issuer else base

    def issuer_of(self, system: str) -> str | None:
        """Inverse of `mrn_system`; None when the system is not one this config produces."""
        for issuer, known in self.mrn_systems.items():
            if known == system:
                return issuer
        if system.startswith(OID_PREFIX) and _OID.match(system[len(OID_PREFIX) :]):
            return system[len(OID_PREFIX) :]
        base = self.identifier_base.rstrip("/") + "/mrn"
        if system == base:
            return ""
        if system.startswith(base + "/"):
            return unquote(system[len(base) + 1 :])
        return None

    # ---------------------------------------------------------------- codes
    def code_system(self, hl7_system: str) -> str:
        """FHIR system URI for an HL7 coding system name (OBR-4.3); local codes get our namespace."""
        key = hl7_system.strip()
        if key in self.code_systems:
            return self.code_systems[key]
        if key.upper() in KNOWN_CODE_SYSTEMS:
            return KNOWN_CODE_SYSTEMS[key.upper()]
        if "://" in key or key.startswith("urn:"):
            return key  # already a URI (e.g. an order that came in over FHIR)
        return f"{self.procedure_system_base}/{quote(key or 'L', safe='')}"

    def hl7_code_system(self, system: str) -> str:
        """Inverse of `code_system`: the HL7 name when we know one, else the URI itself."""
        for name, uri in self.code_systems.items():
            if uri == system:
                return name
        prefix = self.procedure_system_base + "/"
        if system.startswith(prefix):
            return unquote(system[len(prefix) :])
        for name, uri in KNOWN_CODE_SYSTEMS.items():
            if uri == system:
                return name
        return system


def study_uid_value(uid: str) -> str:
    return uid if uid.startswith(OID_PREFIX) else OID_PREFIX + uid


def uid_from_value(value: str) -> str:
    return value[len(OID_PREFIX) :] if value.startswith(OID_PREFIX) else value
