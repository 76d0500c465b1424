"""/exceptions (unmatched studies and MPPS) and /orders/{accession}/link-study.

Linking tells the order first (STUDY_LINKED with the study's counts) and resolves the
unmatched item after. Once the order has the study the answer is 200; if closing the item
failed it says `resolved: false`, and linking again completes it (the event's control id
makes the second send a no-op).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from radflow.api.deps import ServiceDep, SettingsDep
from radflow.api.responses import NOT_FOUND, REFUSED, TOO_LARGE, UNAVAILABLE
from radflow.api.text_checks import SafeText, safe
from radflow.domain.definitions import EventSource, OrderStatus, UnmatchedKind
from radflow.domain.order import EventKind, OrderEvent, StudyInfo
from radflow.domain.unmatched import UnmatchedItem
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.unmatched import UnmatchedConflict, UnmatchedNotFound, get_unmatched, list_unmatched, resolve_unmatched

log = logging.getLogger("radflow.api")

router = APIRouter(tags=["exceptions"])

Accession = Annotated[SafeText, safe(64, "the order's accession number", Path, min_length=1)]
Key = Annotated[SafeText, safe(64, "StudyInstanceUID or MPPS SOP Instance UID", Path)]
Kind = Annotated[UnmatchedKind, Path(description="study (unsolicited images) or mpps (unscheduled procedure step)")]


class ExceptionPublic(BaseModel):
    kind: str = Field(description="study (unsolicited images) or mpps (unscheduled procedure step)")
    key: str = Field(description="StudyInstanceUID for a study, the MPPS SOP Instance UID for an MPPS")
    reason: str = Field(description="why it matched no order, in one line")
    details: dict[str, Any] = Field(description="what the gateway knows: accession as sent, patient, counts...")
    first_seen: datetime = Field(description="when the gateway first reported it")
    last_seen: datetime = Field(description="when the gateway last reported it")
    reports: int = Field(description="how many times the gateway reported it")
    resolved: bool = Field(description="linked to an order or dismissed")
    linked_accession: str = Field(description="the order it was linked to; empty when not linked")


class ExceptionListPublic(BaseModel):
    items: list[ExceptionPublic] = Field(description="the open (or, when asked, every) exception")
    consistency: str = Field("membership from Temporal visibility (eventually consistent); each item read exactly",
                             description="how exact this list is")


class LinkStudyRequest(BaseModel):
    study_instance_uid: str = Field(min_length=1, max_length=64, description="the unmatched study to attach to the order")
    note: str = Field(default="", max_length=500, description="why, recorded on the order's timeline")


class LinkStudyResult(BaseModel):
    accession: str = Field(description="the order the study now belongs to")
    study_instance_uid: str = Field(description="the linked study")
    series_count: int = Field(description="series of the study")
    instance_count: int = Field(description="instances of the study")
    status: OrderStatus = Field(description="the order's status after the link")
    resolved: bool = Field(description="the exception was closed (false: link again to complete it)")


class DismissRequest(BaseModel):
    note: str = Field(default="", max_length=500, description="why it is dismissed (kept with the exception)")


def _public(item: UnmatchedItem) -> ExceptionPublic:
    return ExceptionPublic(kind=item.kind, key=item.key, reason=item.reason, details=item.details,
                           first_seen=item.first_seen, last_seen=item.last_seen, reports=item.notes,
                           resolved=item.resolved, linked_accession=item.linked_accession)


@router.get("/exceptions", response_model=ExceptionListPublic, responses=UNAVAILABLE, summary="Open unmatched studies and MPPS")
async def list_exceptions(
    service: ServiceDep,
    kind: Annotated[UnmatchedKind | None, Query(description="only this kind")] = None,
) -> ExceptionListPublic:
    items = await list_unmatched(service.client, kind.value if kind else None, task_queue=service.task_queue,
                                 rpc_timeout_s=service.rpc_timeout.total_seconds())
    return ExceptionListPublic(items=[_public(i) for i in items])


@router.get("/exceptions/{kind}/{key}", response_model=ExceptionPublic, responses={**NOT_FOUND, **UNAVAILABLE},
            summary="One unmatched item (open or resolved)")
async def get_exception(service: ServiceDep, kind: Kind, key: Key) -> ExceptionPublic:
    item = await get_unmatched(service.client, kind.value, key, rpc_timeout_s=service.rpc_timeout.total_seconds())
    if item is None:
        raise UnmatchedNotFound(f"no unmatched {kind.value} {key}")
    return _public(item)


@router.post("/exceptions/{kind}/{key}/dismiss", response_model=ExceptionPublic,
             responses={**NOT_FOUND, **REFUSED, **TOO_LARGE, **UNAVAILABLE},
             summary="Close an unmatched item without linking it (e.g. a test study)")
async def dismiss_exception(service: ServiceDep, kind: Kind, key: Key,
                            body: Annotated[DismissRequest, Body()] = DismissRequest()) -> ExceptionPublic:
    item = await resolve_unmatched(service.client, kind.value, key, "", body.note or "dismissed",
                                   rpc_timeout_s=service.rpc_timeout.total_seconds())
    log.info("unmatched item dismissed", extra={"kind": kind.value, "key": key})
    return _public(item)


@router.post("/orders/{accession}/link-study", response_model=LinkStudyResult,
             responses={**NOT_FOUND, **REFUSED, **TOO_LARGE, **UNAVAILABLE}, summary="Link an unmatched (unsolicited) study to this order")
async def link_study(accession: Accession, body: LinkStudyRequest, service: ServiceDep,
                     settings: SettingsDep) -> LinkStudyResult:
    uid = body.study_instance_uid
    item = await get_unmatched(service.client, UnmatchedKind.STUDY.value, uid,
                               rpc_timeout_s=service.rpc_timeout.total_seconds())
    if item is None:
        raise UnmatchedNotFound(f"no unmatched study {uid}")
    if item.resolved and item.linked_accession != accession:
        raise UnmatchedConflict(f"study {uid} is already resolved (linked to {item.linked_accession or 'nothing'})")
    study = _study_counts(settings, uid, item)
    result = await _tell_order(service, accession, study)
    # The order has the study now: whatever fails below, the answer is 2xx (a 5xx would say
    # "nothing applied"). An item left open says so (resolved=false); linking again closes it.
    resolved = item.resolved
    if not resolved:
        try:
            await resolve_unmatched(service.client, UnmatchedKind.STUDY.value, uid, accession,
                                    body.note or "linked by operator", rpc_timeout_s=service.rpc_timeout.total_seconds())
            resolved = True
        except Exception as err:
            log.warning("study linked but its exception item not closed", extra={"accession": accession, "study_uid": uid,
                                                                                 "error": repr(err)[:200]})
    log.info("unmatched study linked", extra={"accession": accession, "study_uid": uid, "instances": study.instance_count})
    return LinkStudyResult(accession=accession, study_instance_uid=uid, series_count=study.series_count,
                           instance_count=study.instance_count, status=result, resolved=resolved)


async def _tell_order(service: OrderService, accession: str, study: StudyInfo) -> OrderStatus:
    event = OrderEvent(kind=EventKind.STUDY_LINKED, source=EventSource.API,
                       control_id=f"link:{study.study_instance_uid}:{study.instance_count}", study=study)
    return (await service.send_event(accession, event)).status


def _study_counts(settings: Settings, uid: str, item: UnmatchedItem) -> StudyInfo:
    """The spool's counts when this process sees it (same host as the gateway), else the item's."""
    from radflow.gateways.dicom.spool import Spool, spool_dir

    root: FsPath = spool_dir(settings)
    if (root / "index.sqlite").exists():
        spool = Spool(root)
        try:
            info = spool.study_info(uid)
        finally:
            spool.close()
        if info.instance_count:
            info.stable = True
            info.archive_queue = str(item.details.get("archive_queue") or "")
            return info
    d = item.details
    return StudyInfo(study_instance_uid=uid, series_count=int(d.get("series_count") or 0),
                     instance_count=int(d.get("instance_count") or 0), modality=str(d.get("modality") or ""),
                     stable=True, archive_queue=str(d.get("archive_queue") or ""))
