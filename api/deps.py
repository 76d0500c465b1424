"""Dependencies the routes declare (`Annotated`), so tests and callers can swap them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from radflow.api.text_checks import SafeText, safe
from radflow.service.ordering import OrderService, TemporalUnavailable
from radflow.infra.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> OrderService:
    service: OrderService | None = request.app.state.service
    if service is None:
        # The lifespan keeps trying to connect; until then every order call is a 503.
        raise TemporalUnavailable("not connected to Temporal yet")
    return service


def actor(request: Request) -> str:
    """The authenticated caller's name for the order's timeline; "" when authentication is off."""
    from radflow.api.guard import PRINCIPAL_KEY

    principal = request.scope.get(PRINCIPAL_KEY)
    return principal.name if principal is not None and principal.method != "none" else ""


def origin(request: Request) -> str:
    """Where an operator action came from, for the order's timeline: the radflow CLI names the OS
    user it runs as (a claim, recorded as such, never used for access); else the API."""
    import re

    from radflow.api.audit import CLIENT_USER_HEADER

    user = re.sub(r"[^A-Za-z0-9._@-]", "", request.headers.get(CLIENT_USER_HEADER, ""))[:64]
    return f"radflow CLI, OS user {user}" if user else "api"


def control_id(idempotency_key: Annotated[SafeText | None, safe(128, "a retried request with the same key is applied once", where=Header,
                                                                                   alias="Idempotency-Key")] = None) -> str:
    """The event's control id: the client's Idempotency-Key (a retried POST is applied once), else fresh."""
    return idempotency_key or f"api-{uuid.uuid4().hex}"


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[OrderService, Depends(get_service)]
ControlIdDep = Annotated[str, Depends(control_id)]
ActorDep = Annotated[str, Depends(actor)]
OriginDep = Annotated[str, Depends(origin)]
