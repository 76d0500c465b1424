"""/docs and /redoc work without internet, and the OpenAPI document describes every field.

The app runs under uvicorn on loopback with API keys configured (auth on): the doc pages and
their assets must still be public, and every URL the pages load must be this server's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.api.fhir_stack import serve

KEYS = "reader-client:reader:reader-secret-xxxxxxxxxxxxxxxxxxxx"
_URL_ATTR = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*['"]([^'"]+)['"]|Redoc\.init\(\s*['"]([^'"]+)""")
_ANY_URL = re.compile(r"""https?://[^\s"'<>)]+""")


@pytest.fixture
async def api_url(settings: Settings, service: OrderService) -> AsyncIterator[str]:
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(KEYS)}), service, audit=False)
    async with serve(app) as url:
        yield url


def referenced(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _URL_ATTR.finditer(html)]


@pytest.mark.parametrize(("page", "scripts"), [("/docs", {"swagger-ui-bundle.js"}), ("/redoc", {"redoc.standalone.js"})])
async def test_doc_pages_load_only_local_assets(api_url: str, page: str, scripts: set[str]) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        resp = await http.get(page)  # no token: the pages are public
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        html = resp.text
        # Nothing in the page points to another host (a CDN, Google Fonts...).
        assert _ANY_URL.findall(html) == [], _ANY_URL.findall(html)
        urls = referenced(html)
        assert "/openapi.json" in urls
        assert {u.rsplit("/", 1)[-1] for u in urls} >= scripts
        for url in urls:
            absolute = urljoin(api_url + page, url)
            assert urlsplit(absolute).netloc == urlsplit(api_url).netloc, url
            got = await http.get(absolute)
            assert got.status_code == 200, (url, got.status_code)
            if url.endswith(".js"):
                assert got.headers["content-type"].startswith("text/javascript")
                assert len(got.content) > 100_000  # the real bundle, not a stub page
            if url.endswith(".css"):
                assert got.headers["content-type"].startswith("text/css")


async def test_swagger_bundle_renders_openapi_31(api_url: str) -> None:
    # FastAPI writes OpenAPI 3.1; Swagger UI renders 3.1 from major version 5 on.
    async with httpx.AsyncClient(base_url=api_url) as http:
        assert (await http.get("/openapi.json")).json()["openapi"].startswith("3.1")
        bundle = (await http.get("/docs/assets/swagger-ui-bundle.js")).text
    assert re.search(r'"5\.\d+\.\d+"', bundle), "Swagger UI 5 expected"


async def test_only_the_named_assets_are_served(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        for name in ("core.py", "__init__.py", "favicon.ico"):
            assert (await http.get(f"/docs/assets/{name}")).status_code == 404, name
        # A path that leaves the assets folder is no public route at all (the guard asks for admin).
        assert (await http.get("/docs/assets/%2E%2E/%2E%2E/pyproject.toml")).status_code == 401


def _properties(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, schema in doc["components"]["schemas"].items():
        out += [(f"{name}.{prop}", spec) for prop, spec in schema.get("properties", {}).items()]
    return out


def test_every_schema_property_and_parameter_has_a_description(settings: Settings) -> None:
    doc = create_app(settings, audit=False).openapi()
    props = _properties(doc)
    assert len(props) > 100
    missing = [name for name, spec in props if not spec.get("description")]
    assert not missing, f"schema properties without a description: {missing}"
    params = [(f"{method.upper()} {path} {p['name']}", p) for path, ops in doc["paths"].items()
              for method, op in ops.items() for p in op.get("parameters", [])]
    assert params
    undescribed = [name for name, p in params if not (p.get("description") or p.get("schema", {}).get("description"))]
    assert not undescribed, f"parameters without a description: {undescribed}"


MAIN_BODIES = [("/orders/{accession}/cancel", "post"), ("/orders/{accession}/retry", "post"),
               ("/orders/{accession}/schedule", "post"), ("/bulk/orders/{action}", "post")]
MAIN_RESPONSES = [("/orders", "get"), ("/orders/{accession}", "get"), ("/orders/{accession}/timeline", "get"),
                  ("/orders/{accession}/cancel", "post"), ("/orders/{accession}/retry", "post"),
                  ("/bulk/orders/{action}", "post")]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref") or next((s.get("$ref") for s in schema.get("anyOf", []) if "$ref" in s), None)
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def test_main_endpoints_have_examples(settings: Settings) -> None:
    doc = create_app(settings, audit=False).openapi()
    for path, method in MAIN_BODIES:
        body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert body.get("examples") or _resolve(doc, body["schema"]).get("examples"), (method, path)
    for path, method in MAIN_RESPONSES:
        ok = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        assert ok.get("examples") or _resolve(doc, ok["schema"]).get("examples"), (method, path)
