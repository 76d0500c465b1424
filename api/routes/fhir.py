"""/fhir: FHIR R4 order intake (ServiceRequest) and a read facade over live order state.

Resource ids are accession numbers: `ServiceRequest/{accession}` is the order, and the
order's Task, ImagingStudy and DiagnosticReport carry the same id. Intake goes through
`OrderService` exactly like an HL7 NW: POST creates (201 + Location), a resend of the
same order answers 200 with the existing resource, PUT with status `revoked` cancels
(discontinues once the procedure started) and any other PUT is an order change.
Errors are OperationOutcomes: 400 unreadable / not R4, 422 against radflow's rules,
404 unknown id, 409 refused by the order, 503 Temporal unavailable (nothing applied).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from radflow.api.audit import note_order
from radflow.api.deps import ServiceDep, SettingsDep
from radflow.api.text_checks import SafeText, safe
from radflow.api.fhir_facade import facade_endpoint, facade_resource
from radflow.api.fhir_http import (
    FHIR_JSON,
    RESOURCE_BODY,
    FhirError,
    FhirResponse,
    base_url,
    error_response,
    fhir_errors_doc,
    json_depth,
    searchset,
)
from radflow.api.fhir_search import BASED_ON, SERVICE_REQUEST_PARAMS, Searcher, matches_service_request, order_reference, parse_params
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.fhir import FhirInputError, order_from_service_request, placer_key
from radflow.domain.fhir.ids import NotAFhirId, accession_from_id, fhir_id
from radflow.domain.fhir.intake import CANCEL_STATUSES, CREATE_STATUSES
from radflow.domain.order import EventKind, OrderData, OrderEvent, OrderState
from radflow.domain.transitions import effective_status
from radflow.service.order_read import Consistency, read_order
from radflow.service.ordering import EventRejected, OrderNotFound, OrderService, TemporalUnavailable
from radflow.infra.settings import Settings

log = logging.getLogger("radflow.api.fhir")

router = APIRouter(prefix="/fhir", tags=["fhir"])

DEFAULT_COUNT = 50
# FHIR resources nest a dozen levels; far deeper input only costs recursion further on.
MAX_JSON_DEPTH = 64
IdempotencyKey = Annotated[SafeText | None, safe(128, "a retried request with the same key is applied once",
                                                  where=Header, alias="Idempotency-Key")]
ResourceId = Annotated[str, Path(description="the resource's logical id (for order resources: derived from the accession)")]


def fhir_errors(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Every failure of a FHIR route becomes an OperationOutcome with the matching status."""

    @wraps(handler)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except StarletteHTTPException:
            raise  # e.g. the body size limit (413): answered by the app's handler
        except FhirError as err:
            return error_response(err)
        except FhirInputError as err:
            return error_response(FhirError(400 if err.structural else 422, err.message, err.code, err.expression))
        except OrderNotFound as err:
            return error_response(FhirError(404, str(err) or "unknown resource", "not-found"))
        except EventRejected as err:
            return error_response(FhirError(409, str(err), "business-rule"))
        except (TemporalUnavailable, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            # Not confirmed by Temporal: the client must retry, never read this as success.
            # Temporal's message may quote its SQL store: it goes to the log only.
            log.warning("temporal unavailable", extra={"error": repr(err)[:300]})
            message = "Temporal unavailable, nothing confirmed: retry"
            return error_response(FhirError(503, message, "transient", headers={"Retry-After": "2"}))
        except Exception:
            log.exception("fhir route failed")
            return error_response(FhirError(500, "internal error (logged); nothing may be assumed applied", "exception"))

    return wrapped


# ------------------------------------------------------------------ capability
@router.get("/metadata", response_class=FhirResponse)
async def metadata(request: Request) -> FhirResponse:
    search = {
        "ServiceRequest": [
            ("identifier", "token", "system|value: accession (ACSN), placer number or urn:dicom:uid study"),
            ("patient", "reference", "the patient's MRN (this facade's Patient id), e.g. Patient/M1"),
            ("patient:identifier", "token", "MRN as system|value"),
            ("subject", "reference", "same as patient"),
            ("status", "token", "active | completed | revoked"),
        ],
        "Task": [("based-on", "reference", "ServiceRequest/{accession}")],
        "ImagingStudy": [("basedon", "reference", "ServiceRequest/{accession}")],
        "DiagnosticReport": [("based-on", "reference", "ServiceRequest/{accession}")],
    }
    resources = []
    for kind, params in search.items():
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if kind == "ServiceRequest":
            interactions += [{"code": "create"}, {"code": "update"}]
        resources.append(
            {
                "type": kind,
                "interaction": interactions,
                "searchParam": [
                    {"name": n, "type": t, "documentation": doc} for n, t, doc in [*params, ("_count", "number", "page size")]
                ],
                **({"conditionalCreate": False, "updateCreate": False} if kind == "ServiceRequest" else {}),
            }
        )
    resources.append({"type": "Endpoint", "interaction": [{"code": "read"}]})
    return FhirResponse(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2030-01-01",
            "kind": "instance",
            "software": {"name": "radflow", "version": request.app.version},
            "implementation": {"description": "radflow FHIR order intake and read facade", "url": base_url(request)},
            "fhirVersion": "4.0.1",
            "format": [FHIR_JSON, "json"],
            "rest": [{"mode": "server", "resource": resources}],
        }
    )


# ------------------------------------------------------------------ intake
@router.post(
    "/ServiceRequest", response_class=FhirResponse, status_code=201, openapi_extra=RESOURCE_BODY,
    responses={200: {"description": "a resend: the existing order, unchanged"}, **fhir_errors_doc(400, 409, 413, 415, 422, 503)},
)
@fhir_errors
async def create_service_request(
    request: Request, service: ServiceDep, settings: SettingsDep, idempotency_key: IdempotencyKey = None
) -> FhirResponse:
    resource = await _read_resource(request)
    cfg = settings.fhir_mapping()
    order = order_from_service_request(resource, cfg)
    if not order.accession:
        order.accession = await service.allocate_accession(placer_key(order, cfg))
    note_order(request, order, cfg)
    control_id = idempotency_key or f"fhir-create-{order.accession}"
    try:
        # Indexed under the key allocate_accession looks up, so a resend finds this order.
        key = placer_key(order, cfg) if order.placer_number else ""
        result = await service.start_order(order, EventSource.FHIR, control_id, placer_key=key)
    except EventRejected:
        # The accession belongs to an order that already finished: the resend still gets it.
        state = await service.get_state(order.accession)
        created = False
    else:
        # From here on the order exists: whatever fails now, the answer stays 2xx.
        created = result.created
        state = await _applied_state(service, order.accession, _initial_state(order, result.status), fresh=created)
    log.info("fhir order intake", extra={"accession": order.accession, "order_created": created})
    location = f"{base_url(request)}/ServiceRequest/{_id_or_accession(order.accession)}"
    return FhirResponse(_applied_resource(state, settings), status_code=201 if created else 200,
                        headers={"Location": location} if created else None)


async def _applied_state(service: OrderService, accession: str, fallback: OrderState, *, fresh: bool = False) -> OrderState:
    """The order's state after Temporal accepted a change. A new order's state is what we
    just started it with (no query, so the answer does not wait on a worker); otherwise
    the live state, or `fallback` when the read fails: the change was applied, so a failed
    read must not turn the answer into an error the client would retry."""
    if fresh:
        return fallback
    try:
        return await service.get_state(accession)
    except Exception as err:
        log.warning("order state unreadable after an applied change; answering from what was sent",
                    extra={"accession": accession, "error": repr(err)[:200]})
        return fallback


def _applied_resource(state: OrderState, settings: Settings) -> dict:
    """The ServiceRequest of an order Temporal accepted; never raises (a 5xx would say "not applied")."""
    try:
        resource = facade_resource("ServiceRequest", state, settings.fhir_mapping())
    except Exception:
        log.exception("facade mapping failed for an applied order", extra={"accession": state.order.accession})
        resource = None
    if resource is None:
        resource = {"resourceType": "ServiceRequest", "id": _id_or_accession(state.order.accession), "status": "active", "intent": "order",
                    "subject": {"display": "see GET /fhir/ServiceRequest/{id}"}}
    return resource


@router.put("/ServiceRequest/{id}", response_class=FhirResponse, openapi_extra=RESOURCE_BODY,
            responses=fhir_errors_doc(400, 404, 409, 413, 415, 422, 503))
@fhir_errors
async def update_service_request(
    id: ResourceId, request: Request, service: ServiceDep, settings: SettingsDep, idempotency_key: IdempotencyKey = None
) -> FhirResponse:
    resource = await _read_resource(request)
    if resource.get("id") not in (None, id):
        raise FhirError(400, f"resource id {str(resource.get('id'))[:70]!r} does not match the URL id {id!r}", "invalid", "ServiceRequest.id")
    accession = _accession(id)
    cfg = settings.fhir_mapping()
    incoming = order_from_service_request(resource, cfg, for_update=True)
    if incoming.accession and incoming.accession != accession:
        message = "the accession identifier cannot change (it is this order's id)"
        raise FhirError(422, message, "business-rule", "ServiceRequest.identifier")
    state = await service.get_state(accession)
    note_order(request, state.order, cfg)
    status = resource["status"]
    body_hash = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).hexdigest()[:20]
    control_id = idempotency_key or f"fhir-put-{body_hash}-{state.updated_at.timestamp():.6f}"
    if status in CANCEL_STATUSES:
        started = effective_status(state) == OrderStatus.IN_PROGRESS
        kind = EventKind.DISCONTINUE if started else EventKind.CANCEL
        event = OrderEvent(kind=kind, source=EventSource.FHIR, control_id=control_id, reason=f"ServiceRequest status {status}")
        result = await service.send_event(accession, event)
        after = state.model_copy(update={"status": result.status})
    elif status in CREATE_STATUSES:
        merged = _merge(state.order, incoming, resource)
        after = state
        if merged != state.order:
            event = OrderEvent(kind=EventKind.ORDER_CHANGED, source=EventSource.FHIR, control_id=control_id, order=merged)
            result = await service.send_event(accession, event)
            after = state.model_copy(update={"order": merged, "status": result.status})
    else:
        message = f"status {status!r} cannot be set by a placer here (use active to change, revoked to cancel)"
        raise FhirError(422, message, "business-rule", "ServiceRequest.status")
    # Applied (or a no-op): answer 200 even if the read-back fails.
    return FhirResponse(_applied_resource(await _applied_state(service, accession, after), settings))


def _merge(current: OrderData, incoming: OrderData, resource: dict) -> OrderData:
    """The order after a PUT: what the ServiceRequest says, the rest (SPS ids, station name,
    referring physician, character set...) kept, since a ServiceRequest cannot carry it."""
    new = current.model_copy(deep=True)
    new.procedure = incoming.procedure
    new.priority = incoming.priority
    new.reason = incoming.reason
    if incoming.placer_number:
        new.placer_number, new.placer_system = incoming.placer_number, incoming.placer_system
    if incoming.filler_number:
        new.filler_number = incoming.filler_number
    if incoming.requested_at:
        new.requested_at = incoming.requested_at
    if resource.get("requester"):
        new.ordering_provider = incoming.ordering_provider
    if resource.get("encounter"):
        keep = current.visit if current.visit.visit_number == incoming.visit.visit_number else None
        new.visit = incoming.visit if keep is None or incoming.visit.patient_class else keep
    # A subject by identifier only says who, not the demographics: keep ours for the same MRN.
    if incoming.patient.mrn != current.patient.mrn or incoming.patient.name.family or incoming.patient.birth_date:
        new.patient = incoming.patient
    sched = incoming.schedule
    new.schedule.start = sched.start or new.schedule.start
    new.schedule.modality = sched.modality or new.schedule.modality
    if sched.station_ae and sched.station_ae != new.schedule.station_ae:
        new.schedule.station_ae, new.schedule.station_name = sched.station_ae, sched.station_name
    return new


# ------------------------------------------------------------------ reads
@router.get("/ServiceRequest/{id}", response_class=FhirResponse, responses=fhir_errors_doc(404, 422, 503))
@fhir_errors
async def read_service_request(id: ResourceId, service: ServiceDep, settings: SettingsDep, request: Request) -> FhirResponse:
    state = (await read_order(service, _accession(id))).state  # the read model: no wait for a worker
    note_order(request, state.order, settings.fhir_mapping())
    return FhirResponse(_resource_or_404("ServiceRequest", state, settings))


@router.get("/Endpoint/{id}", response_class=FhirResponse, responses=fhir_errors_doc(404, 422))
@fhir_errors
async def read_endpoint(id: ResourceId, settings: SettingsDep) -> FhirResponse:
    cfg = settings.fhir_mapping()
    if id != cfg.endpoint_name:
        raise FhirError(404, f"unknown Endpoint/{id}", "not-found")
    return FhirResponse(facade_endpoint(cfg))


def _order_read(kind: str) -> Callable[..., Awaitable[FhirResponse]]:
    @fhir_errors
    async def read(id: ResourceId, service: ServiceDep, settings: SettingsDep) -> FhirResponse:
        # The read model has no report text: a DiagnosticReport (conclusion, presentedForm) asks the workflow.
        strong = Consistency.STRONG if kind == "DiagnosticReport" else Consistency.EVENTUAL
        return FhirResponse(_resource_or_404(kind, (await read_order(service, _accession(id), strong)).state, settings))

    read.__name__ = f"read_{kind.lower()}"
    return read


for _kind in ("Task", "ImagingStudy", "DiagnosticReport"):
    router.add_api_route(f"/{_kind}/{{id}}", _order_read(_kind), methods=["GET"], response_class=FhirResponse,
                         responses=fhir_errors_doc(404, 422, 503))


# ------------------------------------------------------------------ searches
@router.get("/ServiceRequest", response_class=FhirResponse, responses=fhir_errors_doc(400, 503))
@fhir_errors
async def search_service_requests(request: Request, service: ServiceDep, settings: SettingsDep) -> FhirResponse:
    params, count = parse_params(request, SERVICE_REQUEST_PARAMS, DEFAULT_COUNT, settings.fhir_search_max)
    cfg = settings.fhir_mapping()
    searcher = Searcher(service, cfg, settings.fhir_search_max)
    states = await searcher.states(await searcher.service_request_candidates(params))
    matches = []
    for state in sorted(states, key=lambda s: s.created_at, reverse=True):
        resource = facade_resource("ServiceRequest", state, cfg)
        if resource is not None and matches_service_request(resource, state, params, cfg):
            matches.append(resource)
    return FhirResponse(searchset(request, matches[:count], len(matches)))


def _based_on_search(kind: str) -> Callable[..., Awaitable[FhirResponse]]:
    param = BASED_ON[kind]

    @fhir_errors
    async def search(request: Request, service: ServiceDep, settings: SettingsDep) -> FhirResponse:
        params, count = parse_params(request, {param}, DEFAULT_COUNT, settings.fhir_search_max)
        if param not in params:
            raise FhirError(400, f"{kind} searches need {param}=ServiceRequest/{{id}}", "required", param)
        accessions = None
        for occurrence in params[param]:  # repeated parameters AND together
            found = {a for a in (order_reference(v) for v in occurrence) if a}
            accessions = found if accessions is None else accessions & found
        cfg = settings.fhir_mapping()
        # The read model has no report text: DiagnosticReports are read from the workflows themselves.
        consistency = Consistency.STRONG if kind == "DiagnosticReport" else Consistency.EVENTUAL
        states = await Searcher(service, cfg, settings.fhir_search_max).states(sorted(accessions or []), consistency)
        matches = [r for r in (facade_resource(kind, s, cfg) for s in states) if r is not None]
        return FhirResponse(searchset(request, matches[:count], len(matches)))

    search.__name__ = f"search_{kind.lower()}"
    return search


for _kind in BASED_ON:
    router.add_api_route(f"/{_kind}", _based_on_search(_kind), methods=["GET"], response_class=FhirResponse,
                         responses=fhir_errors_doc(400, 503))


# ------------------------------------------------------------------ helpers
async def _read_resource(request: Request) -> dict:
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype:
        raise FhirError(415, f"content type {ctype[:100]!r} is not supported: send {FHIR_JSON}", "not-supported")
    raw = await request.body()
    try:
        resource = json.loads(raw)
    except RecursionError as err:
        raise FhirError(400, f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels", "structure") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FhirError(400, f"the body is not valid JSON: {err}", "structure") from err
    if not isinstance(resource, dict):
        raise FhirError(400, "the body is not a JSON object (a FHIR resource)", "structure")
    if json_depth(resource) > MAX_JSON_DEPTH:
        raise FhirError(400, f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels", "structure")
    return resource


def _accession(resource_id: str) -> str:
    """The order a facade id names (ids are accessions written as FHIR ids); 404 otherwise."""
    accession = accession_from_id(resource_id)
    if accession is None:
        raise FhirError(404, f"no resource has the id {resource_id[:70]!r} here (not a FHIR id radflow issues)", "not-found")
    return accession


def _id_or_accession(accession: str) -> str:
    try:
        return fhir_id(accession)
    except NotAFhirId:
        return accession


def _initial_state(order: OrderData, status: OrderStatus) -> OrderState:
    now = datetime.now(UTC)
    return OrderState(order=order, status=status, created_at=now, updated_at=now)


def _resource_or_404(kind: str, state: OrderState, settings: Settings) -> dict:
    resource = facade_resource(kind, state, settings.fhir_mapping())
    if resource is None:
        raise FhirError(404, f"order {state.order.accession} has no {kind} yet", "not-found")
    return resource


