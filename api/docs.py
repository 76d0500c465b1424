"""/docs (Swagger UI) and /redoc without internet: the pages load their scripts from this server.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, a blank page on a hospital
network without internet. The assets come from the `fastapi-offline` wheel (Swagger UI 5 and
ReDoc 2, MIT): `swagger-ui-bundle` only ships Swagger UI 4, which cannot render the OpenAPI 3.1
document FastAPI generates, and PyPI has no ReDoc bundle on its own that does not pull in
another web framework. Only the files named below are served (no directory walk).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

ASSETS_PREFIX = "/docs/assets"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_CACHE: dict[str, bytes] = {}


def _asset(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = (files("fastapi_offline") / "static" / name).read_bytes()
    return _CACHE[name]


# FastAPI's own 422 schemas come without descriptions; ours say what each part means.
_BUILTIN = {
    "HTTPValidationError": {"detail": "one entry per refused part of the request"},
    "ValidationError": {
        "loc": "where: body, query, path or header, then the field",
        "msg": "why it was refused, in one line",
        "type": "machine-readable kind, e.g. missing, string_too_long, invalid_filter",
        "input": "the refused value",
        "ctx": "the limit that applied, e.g. max_length",
    },
}


def describe_builtin_schemas(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.get("components", {}).get("schemas", {})
        for name, props in _BUILTIN.items():
            for prop, text in props.items():
                spec = components.get(name, {}).get("properties", {}).get(prop)
                if spec is not None:
                    spec.setdefault("description", text)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def docs_router(app: FastAPI) -> APIRouter:
    """The doc pages of `app` (created with docs_url=None, redoc_url=None)."""
    router = APIRouter(include_in_schema=False)
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def root(request: Request) -> str:
        return request.scope.get("root_path", "")

    @router.get("/docs")
    async def swagger(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{base}{redirect_url}",
            swagger_js_url=f"{base}{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS_PREFIX}/favicon.png",
        )

    @router.get(redirect_url)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        # with_google_fonts=False: the page would otherwise ask fonts.googleapis.com.
        return get_redoc_html(
            openapi_url=f"{base}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_PREFIX}/favicon.png", with_google_fonts=False,
        )

    @router.get(ASSETS_PREFIX + "/{name}")
    async def asset(name: str = Path(max_length=64)) -> Response:
        media_type = _MEDIA_TYPES.get(name)
        if media_type is None:
            raise HTTPException(404, "no such documentation asset")
        return Response(_asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    return router
