"""FHIR ServiceRequest (R4) -> OrderData: the reverse mapping used by FHIR order intake.

Structural checks use the R4B models (R4-compatible for ServiceRequest and Patient);
business checks (status, code, identifiers) follow. Each failure names the offending
element as a FHIRPath expression so the API can answer with an OperationOutcome.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from fhir.resources.R4B.encounter import Encounter as R4Encounter
from fhir.resources.R4B.patient import Patient as R4Patient
from fhir.resources.R4B.practitioner import Practitioner as R4Practitioner
from fhir.resources.R4B.servicerequest import ServiceRequest as R4ServiceRequest
from pydantic import ValidationError

from radflow.domain.fhir.common import DCM, V2_0203
from radflow.domain.fhir.config import DICOM_UID_SYSTEM, FhirMappingConfig, uid_from_value
from radflow.domain.fhir.patient import GENDER
from radflow.domain.order import OrderData, Patient, PersonName, Procedure, Provider, Schedule, Visit

CREATE_STATUSES = ("active", "draft")
CANCEL_STATUSES = ("revoked", "entered-in-error")
R4_STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
# Proposals and plans are not orders a department can perform.
ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
_PRIORITY_TO_HL7 = {"stat": "S", "asap": "A", "routine": "R", "urgent": "T"}
_GENDER_TO_HL7 = {v: k for k, v in GENDER.items() if k in ("M", "F", "O", "U")}
_CLASS_TO_HL7 = {"EMER": "E", "IMP": "I", "AMB": "O", "PRENC": "P"}


class FhirInputError(ValueError):
    """A resource radflow cannot take. `code` is the OperationOutcome issue code.

    `structural` errors (not an R4 ServiceRequest at all) are HTTP 400; the others are
    valid FHIR that breaks radflow's rules (HTTP 422).
    """

    def __init__(self, message: str, expression: str = "", code: str = "invalid", structural: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression
        self.code = code
        self.structural = structural


def validate_r4(resource: dict, expected: str = "ServiceRequest") -> None:
    if not isinstance(resource, dict):
        raise FhirInputError("the body is not a JSON object", "", "structure", structural=True)
    kind = resource.get("resourceType")
    if kind != expected:
        raise FhirInputError(
            f"expected resourceType {expected}, got {kind!r}", f"{expected}.resourceType" if kind else "", "structure", structural=True
        )
    model = {"ServiceRequest": R4ServiceRequest, "Patient": R4Patient}[expected]
    try:
        model.model_validate(resource)
    except ValidationError as err:
        first = err.errors()[0]
        path = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
        missing = first["type"] == "missing"
        message = f"{expected}.{path}: {'is required' if missing else first['msg']}"
        raise FhirInputError(message, f"{expected}.{path}", "required" if missing else "structure", structural=True) from err
    except (TypeError, KeyError, AttributeError) as err:
        # fhir.resources fails this way on some malformed input (e.g. a contained resource
        # whose resourceType is null or ""): still the client's error, never a crash.
        raise FhirInputError(f"{expected} is not a readable R4 resource ({type(err).__name__})", expected, "structure",
                             structural=True) from err


def order_from_service_request(
    resource: dict, cfg: FhirMappingConfig, patient: dict | None = None, *, for_update: bool = False
) -> OrderData:
    """The order a ServiceRequest describes; see `_order_from_service_request`.

    Whatever else the mapping trips over in input that passed R4 validation (a null inside
    a list, a number where a string belongs) is the client's error too: 422, never a crash.
    """
    try:
        return _order_from_service_request(resource, cfg, patient, for_update=for_update)
    except FhirInputError:
        raise
    except (TypeError, KeyError, AttributeError, ValueError, ValidationError) as err:
        raise FhirInputError(f"ServiceRequest has an element radflow cannot read ({type(err).__name__})", "ServiceRequest",
                             "value") from err


def _order_from_service_request(
    resource: dict, cfg: FhirMappingConfig, patient: dict | None = None, *, for_update: bool = False
) -> OrderData:
    """The order a ServiceRequest describes; `accession` is "" when it carries no ACSN identifier.

    `patient` is the resource a `Patient/...` subject points to, when the caller fetched
    it; contained (`#id`) and identifier (logical) subjects resolve without it. With
    `for_update` the status may be anything R4 allows (the caller decides what it means).
    """
    validate_r4(resource)
    status = resource.get("status")
    if status not in R4_STATUSES:
        raise FhirInputError(f"unknown ServiceRequest.status {status!r}", "ServiceRequest.status", "value")
    if not for_update and status not in CREATE_STATUSES:
        raise FhirInputError(
            f"ServiceRequest.status {status!r} cannot create an order (use active or draft)", "ServiceRequest.status", "business-rule"
        )
    if resource.get("intent") not in ORDER_INTENTS:
        raise FhirInputError(
            f"ServiceRequest.intent {resource.get('intent')!r} is not an order", "ServiceRequest.intent", "business-rule"
        )
    contained = {c.get("id"): c for c in resource.get("contained") or [] if isinstance(c, dict)}
    idents = _identifiers(resource, cfg)
    if not for_update and not idents["accession"] and not idents["placer"]:
        raise FhirInputError(
            "ServiceRequest.identifier needs an accession (type ACSN) or placer (type PLAC) identifier,"
            " so a resend finds the same order",
            "ServiceRequest.identifier",
            "required",
        )
    return OrderData(
        accession=idents["accession"],
        placer_number=idents["placer"],
        placer_system=idents["placer_system"],
        filler_number=idents["filler"],
        study_instance_uid=idents["study"],
        patient=_patient(resource.get("subject") or {}, contained, patient, cfg),
        visit=_visit(resource.get("encounter"), contained),
        procedure=_procedure(resource, cfg),
        schedule=_schedule(resource, cfg),
        ordering_provider=_provider(resource.get("requester"), contained, cfg),
        priority=_PRIORITY_TO_HL7.get(resource.get("priority") or "", ""),
        reason=_reason(resource),
        requested_at=_datetime(resource.get("authoredOn")),
        character_set="UNICODE UTF-8",  # JSON is Unicode; the worklist picks ISO_IR 192 from this
    )


def placer_key(order: OrderData, cfg: FhirMappingConfig) -> str:
    """Allocator key for an order that came without accession: placer number ^ placer system."""
    return f"{order.placer_number}^{order.placer_system or cfg.placer_system}"


# ---------------------------------------------------------------------- parts
def _type_code(ident: dict) -> str:
    for coding in (ident.get("type") or {}).get("coding") or []:
        if coding.get("system") in (V2_0203, None):
            return coding.get("code") or ""
    return ""


def _identifiers(resource: dict, cfg: FhirMappingConfig) -> dict[str, str]:
    out = {"accession": "", "placer": "", "placer_system": "", "filler": "", "study": ""}
    untyped: list[tuple[str, str]] = []
    for ident in resource.get("identifier") or []:
        value = (ident.get("value") or "").strip()
        if not value:
            continue
        kind = _type_code(ident)
        system = ident.get("system") or ""
        if kind == "ACSN" or system == cfg.accession_system:
            out["accession"] = out["accession"] or value
        elif kind == "PLAC" or system == cfg.placer_system:
            if not out["placer"]:
                out["placer"], out["placer_system"] = value, system
        elif kind == "FILL" or system == cfg.filler_system:
            out["filler"] = out["filler"] or value
        elif system == DICOM_UID_SYSTEM:
            out["study"] = uid_from_value(value)
        elif not kind:
            untyped.append((value, system))
    # An identifier without type is the placer's own order number (what an EHR sends first).
    if not out["placer"] and untyped:
        out["placer"], out["placer_system"] = untyped[0]
    if out["placer_system"] == cfg.placer_system:
        out["placer_system"] = ""
    if len(out["accession"]) > 16:
        raise FhirInputError(
            "accession identifier longer than 16 characters (DICOM AccessionNumber is SH)", "ServiceRequest.identifier", "value"
        )
    return out


def _resolve(ref: dict | None, contained: dict, expected: str, what: str) -> dict | None:
    if not ref:
        return None
    target = ref.get("reference") or ""
    if target.startswith("#"):
        found = contained.get(target[1:])
        if found is None:
            raise FhirInputError(f"{what} points to {target} but no contained resource has that id", what, "not-found")
        if found.get("resourceType") != expected:
            raise FhirInputError(f"{what} must be a {expected}, {target} is a {found.get('resourceType')}", what, "structure")
        return found
    return None


def _patient(subject: dict, contained: dict, referenced: dict | None, cfg: FhirMappingConfig) -> Patient:
    """Who the order is for, in order of precedence: a contained Patient, the resource a
    literal reference points to (when the caller fetched it), the reference's identifier,
    a conditional reference (`Patient?identifier=system|value`).

    EHRs usually send a literal reference into their own server *and* the MRN as
    identifier; the literal id means nothing here, so the identifier decides.
    """
    where = "ServiceRequest.subject"
    resource = _resolve(subject, contained, "Patient", where)
    target = subject.get("reference") or ""
    if subject.get("type") not in (None, "Patient") or (target and not target.startswith(("#", "Patient/", "Patient?"))
                                                          and "/Patient/" not in target):
        raise FhirInputError("the subject of an imaging order must be a Patient", where, "business-rule")
    if resource is None and referenced is not None and target.startswith("Patient/"):
        resource = referenced
    if resource is not None:
        validate_r4({**resource, "id": resource.get("id") or "p"}, "Patient")
        return _patient_resource(resource, cfg)
    ident = subject.get("identifier")
    if isinstance(ident, dict) and (ident.get("value") or "").strip():
        return Patient(mrn=ident["value"].strip(), issuer=_issuer(ident, cfg))
    if target.startswith("Patient?"):
        return _conditional_patient(target, cfg, where)
    if target and not target.startswith("#"):
        raise FhirInputError(
            f"{target} is not known here: contain the Patient (#id) or add its identifier to the reference", where, "not-found"
        )
    raise FhirInputError("ServiceRequest.subject must name the patient (contained, Patient/id or identifier)", where, "required")


def _conditional_patient(target: str, cfg: FhirMappingConfig, where: str) -> Patient:
    """`Patient?identifier=system|value` (a conditional reference, as in transactions)."""
    params = parse_qs(target.split("?", 1)[1], keep_blank_values=True)
    values = params.get("identifier") or []
    if len(values) != 1 or len(params) != 1:
        raise FhirInputError(
            f"conditional reference {target!r}: only one identifier=system|value criterion is supported", where, "not-supported"
        )
    system, sep, value = values[0].rpartition("|")
    if not value.strip():
        raise FhirInputError(f"conditional reference {target!r} has no identifier value", where, "required")
    return Patient(mrn=value.strip(), issuer=_issuer({"system": system} if sep else {}, cfg))


def _issuer(ident: dict, cfg: FhirMappingConfig) -> str:
    assigner = ident.get("assigner") or {}
    if assigner.get("display"):
        return assigner["display"]
    if (assigner.get("identifier") or {}).get("value"):
        return assigner["identifier"]["value"]
    issuer = cfg.issuer_of(ident.get("system") or "")
    return ident.get("system") or "" if issuer is None else issuer


def _patient_resource(resource: dict, cfg: FhirMappingConfig) -> Patient:
    idents = [i for i in resource.get("identifier") or [] if i.get("value")]
    if not idents:
        raise FhirInputError("the Patient needs an identifier (the MRN)", "Patient.identifier", "required")
    mrn = next((i for i in idents if _type_code(i) == "MR"), None)
    mrn = mrn or next((i for i in idents if cfg.issuer_of(i.get("system") or "") is not None), idents[0])
    names = resource.get("name") or []
    chosen = next((n for n in names if n.get("use") == "official"), None) or next(
        (n for n in names if n.get("use") == "usual"), names[0] if names else {}
    )
    given = [g for g in chosen.get("given") or [] if isinstance(g, str) and g]
    return Patient(
        mrn=mrn["value"],
        issuer=_issuer(mrn, cfg),
        name=PersonName(
            family=chosen.get("family") or "",
            given=given[0] if given else "",
            middle=" ".join(given[1:]),
            prefix=" ".join(chosen.get("prefix") or []),
            suffix=" ".join(chosen.get("suffix") or []),
        ),
        birth_date=(resource.get("birthDate") or "").replace("-", ""),
        sex=_GENDER_TO_HL7.get(resource.get("gender") or "", ""),
    )


def _visit(ref: dict | None, contained: dict) -> Visit:
    if not ref:
        return Visit()
    resource = _resolve(ref, contained, "Encounter", "ServiceRequest.encounter")
    if resource is not None:
        try:
            R4Encounter.model_validate({**resource, "id": resource.get("id") or "e"})
        except ValidationError as err:
            msg = err.errors()[0]["msg"]
            raise FhirInputError(f"contained Encounter is not valid R4: {msg}", "ServiceRequest.encounter", "structure") from err
        idents = [i for i in resource.get("identifier") or [] if i.get("value")]
        klass = (resource.get("class") or {}).get("code") or ""
        locations = resource.get("location") or []
        return Visit(
            visit_number=idents[0]["value"] if idents else "",
            patient_class=_CLASS_TO_HL7.get(klass, ""),
            location=((locations[0].get("location") or {}).get("display") or "") if locations else "",
        )
    ident = ref.get("identifier") or {}
    return Visit(visit_number=ident.get("value") or "")


def _procedure(resource: dict, cfg: FhirMappingConfig) -> Procedure:
    code = resource.get("code") or {}
    codings = [c for c in code.get("coding") or [] if c.get("code")]
    if not codings and not code.get("text"):
        raise FhirInputError("ServiceRequest.code is required: which procedure is ordered", "ServiceRequest.code", "required")
    if not codings:
        return Procedure(text=code["text"])
    first = codings[0]
    return Procedure(
        code=first["code"],
        text=code.get("text") or first.get("display") or "",
        coding_system=cfg.hl7_code_system(first.get("system") or ""),
    )


def _schedule(resource: dict, cfg: FhirMappingConfig) -> Schedule:
    start = _datetime(resource.get("occurrenceDateTime")) or _datetime((resource.get("occurrencePeriod") or {}).get("start"))
    modality = ""
    for concept in (resource.get("orderDetail") or []) + (resource.get("performerType") and [resource["performerType"]] or []):
        for coding in concept.get("coding") or []:
            if coding.get("system") == DCM and coding.get("code"):
                modality = modality or coding["code"]
    station, station_name = "", ""
    for perf in resource.get("performer") or []:
        ident = perf.get("identifier") or {}
        if ident.get("system") == cfg.station_system and ident.get("value"):
            station, station_name = ident["value"], perf.get("display") or ""
            break
    if station_name == station:
        station_name = ""
    return Schedule(start=start, modality=modality, station_ae=station, station_name=station_name)


def _provider(ref: dict | None, contained: dict, cfg: FhirMappingConfig) -> Provider:
    if not ref:
        return Provider()
    target = ref.get("reference") or ""
    resource = contained.get(target[1:]) if target.startswith("#") else None
    if target.startswith("#") and resource is None:
        message = f"requester points to {target} but no contained resource has that id"
        raise FhirInputError(message, "ServiceRequest.requester", "not-found")
    if resource is not None and resource.get("resourceType") == "Practitioner":
        try:
            R4Practitioner.model_validate({**resource, "id": resource.get("id") or "pr"})
        except ValidationError as err:
            msg = err.errors()[0]["msg"]
            raise FhirInputError(f"contained Practitioner is not valid R4: {msg}", "ServiceRequest.requester", "structure") from err
        names = resource.get("name") or [{}]
        given = names[0].get("given") or []
        idents = [i for i in resource.get("identifier") or [] if i.get("value")]
        return Provider(
            id=idents[0]["value"] if idents else "",
            name=PersonName(family=names[0].get("family") or "", given=given[0] if given else "", middle=" ".join(given[1:])),
        )
    # Reference by identifier and/or display only: keep what it says, without guessing name parts.
    ident = ref.get("identifier") or {}
    return Provider(id=ident.get("value") or "", name=PersonName(family=ref.get("display") or ""))


def _reason(resource: dict) -> str:
    for concept in resource.get("reasonCode") or []:
        text = concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")), "")
        if text:
            return text
    return ""


def _datetime(value: str | None) -> datetime | None:
    # A date without a time says the day, not when: no schedule start from it.
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise FhirInputError(f"unreadable dateTime {value!r}", "ServiceRequest", "value") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
