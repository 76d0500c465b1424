"""One router per resource. Gateways with an HTTP face (FHIR, DICOMweb) add theirs to ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from radflow.api.routes import bulk, codec, exceptions, fhir, health, orders

ROUTERS: list[APIRouter] = [health.router, orders.router, bulk.router, fhir.router, exceptions.router, codec.router]
