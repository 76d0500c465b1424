"""The codec server the Temporal UI calls to show encrypted payloads (`--ui-codec-endpoint`).

Temporal's remote codec protocol: POST {endpoint}/decode (or /encode) with
`{"payloads": [{"metadata": {name: base64}, "data": base64}]}`, the namespace in
`X-Namespace`; the answer has the same shape. Behind the API's own authentication: decode
is a PHI read (role reader, audited like every API request), encode lets the UI send input
the workers will accept as radflow's own (role operator). Browsers reach it from the UI's
origin only when that origin is in RADFLOW_CODEC_CORS_ORIGINS.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from temporalio.api.common.v1 import Payload

from radflow.api.audit import AUDIT_KEY
from radflow.service.codec import CodecError, EncryptionCodec

router = APIRouter(prefix="/codec", tags=["codec"])
PREFIX = "/codec/"


class PayloadJson(BaseModel):
    metadata: dict[str, str] = Field(default_factory=dict, description="metadata values, base64")
    data: str = Field("", description="payload bytes, base64")


class PayloadsJson(BaseModel):
    payloads: list[PayloadJson] = Field(default_factory=list, max_length=1000,
                                        description="Temporal payloads as JSON (base64 metadata and data), at most 1000")

    model_config = {"json_schema_extra": {"examples": [{"payloads": [
        {"metadata": {"encoding": "YmluYXJ5L2VuY3J5cHRlZA==", "encryption-key-id": "azIwMjYxMTMwLWFiY2RlZg=="},
         "data": "…"}]}]}}


class CodecProblem(BaseModel):
    detail: str = Field(description="what went wrong, in one line")
    error_type: str = Field(description="machine-readable kind, e.g. UnknownKeyId, PayloadTampered")


# 422 (FastAPI's validation shape, `type` naming the error): not base64, an unknown key id
# (UnknownKeyId), a payload that fails authentication (PayloadTampered).
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": CodecProblem, "description": "payload encryption is not configured, or another namespace"},
}


def _problem(status: int, detail: str, error_type: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "error_type": error_type}, status_code=status)


def _invalid(message: str, error_type: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", "payloads"], "msg": message, "type": error_type}]}, status_code=422)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


async def _apply(request: Request, body: PayloadsJson, namespace: str | None,
                 fn: Callable[[EncryptionCodec, list[Payload]], Awaitable[list[Payload]]]) -> JSONResponse:
    codec: EncryptionCodec | None = request.app.state.codec
    if codec is None:
        return _problem(404, "payload encryption is not configured (RADFLOW_CODEC_KEYS_FILE)", "CodecNotConfigured")
    served = request.app.state.settings.temporal_namespace
    if namespace and namespace != served:
        return _problem(404, f"this codec serves namespace {served!r}", "OtherNamespace")
    try:
        payloads = [Payload(metadata={k: _b64(v) for k, v in p.metadata.items()}, data=_b64(p.data))
                    for p in body.payloads]
    except (binascii.Error, ValueError):
        return _invalid("metadata values and data must be base64", "NotBase64")
    try:
        out = await fn(codec, payloads)
    except CodecError as err:
        return _invalid(str(err), type(err).__name__)
    audit = request.scope.get(AUDIT_KEY)
    if audit is not None:  # the audit line (a PHI read for decode) says how much and for which namespace
        audit.update(payloads=len(out), namespace=served)
    return JSONResponse({"payloads": [
        {"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
         "data": base64.b64encode(p.data).decode()} for p in out]})


Namespace = Annotated[str | None, Header(alias="X-Namespace", max_length=256, description="the Temporal namespace the payloads belong to (the UI sends it)")]


@router.post("/decode", response_model=PayloadsJson, responses=ERRORS,
             summary="Decrypt payloads for the Temporal UI (PHI read: role reader, audited)")
async def decode(request: Request, body: PayloadsJson, namespace: Namespace = None) -> JSONResponse:
    return await _apply(request, body, namespace, lambda c, p: c.decode(p))


@router.post("/encode", response_model=PayloadsJson, responses=ERRORS,
             summary="Encrypt payloads the Temporal UI sends (role operator)")
async def encode(request: Request, body: PayloadsJson, namespace: Namespace = None) -> JSONResponse:
    return await _apply(request, body, namespace, lambda c, p: c.encode(p))


class CodecCors:
    """CORS for /codec/* only, for the Temporal UI's origin (the rest of the API keeps its own setting)."""

    def __init__(self, app: Any, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=origins, allow_credentials=False, allow_methods=["POST"],
                                   allow_headers=["Authorization", "Content-Type", "X-Namespace"], max_age=600)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
