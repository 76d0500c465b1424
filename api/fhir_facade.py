"""The read facade's resources: built from one order's live state, id = the accession as a FHIR id.

Every facade resource of an order shares the order's accession, written as a FHIR id
(`domain.fhir.ids`: ServiceRequest/A1, Task/A1; `FON_1` becomes `FON.5F1`), so links
between them resolve on this server; patients and encounters are not served and stay logical
(identifier) references.
"""

from __future__ import annotations

from collections.abc import Callable

from radflow.domain.fhir import FhirMappingConfig, diagnostic_report, endpoint, imaging_study, service_request, task
from radflow.domain.fhir.common import fhir_datetime
from radflow.domain.fhir.ids import NotAFhirId, fhir_id
from radflow.domain.fhir.keys import study_key
from radflow.domain.order import OrderState

BUILDERS: dict[str, Callable[..., dict | None]] = {
    "ServiceRequest": service_request,
    "Task": task,
    "ImagingStudy": imaging_study,
    "DiagnosticReport": diagnostic_report,
}


def facade_refs(state: OrderState, cfg: FhirMappingConfig) -> dict[str, str]:
    acc = fhir_id(state.order.accession)
    refs = {"ServiceRequest": f"ServiceRequest/{acc}", "Endpoint": f"Endpoint/{cfg.endpoint_name}"}
    if study_key(state) is not None:
        refs["ImagingStudy"] = f"ImagingStudy/{acc}"
    return refs


def facade_resource(kind: str, state: OrderState, cfg: FhirMappingConfig) -> dict | None:
    """The order's resource of `kind`, with id and meta; None when the order has none yet
    (or an accession too long to be written as a FHIR id)."""
    try:
        refs = facade_refs(state, cfg)
    except NotAFhirId:
        return None
    built = BUILDERS[kind](state, cfg, refs)
    if built is None:
        return None
    meta = {"lastUpdated": fhir_datetime(state.updated_at)}
    return {"resourceType": kind, "id": refs["ServiceRequest"].split("/", 1)[1], "meta": meta, **{k: v for k, v in built.items() if k != "resourceType"}}


def facade_endpoint(cfg: FhirMappingConfig) -> dict:
    res = endpoint(cfg)
    return {"resourceType": "Endpoint", "id": cfg.endpoint_name, **{k: v for k, v in res.items() if k != "resourceType"}}
