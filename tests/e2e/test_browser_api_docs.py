"""The API's interactive docs (`/docs` Swagger UI, `/redoc`) of `radflow dev` in headless Chromium, offline.

Every request beyond this machine is aborted, as on a hospital network without internet:
the page must still load its JavaScript and render the API's operations.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.browser import DevStack, local_only, screenshot

pytestmark = pytest.mark.integration

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


async def test_api_docs_render_their_operations_without_internet(dev_stack: DevStack, browser: Browser) -> None:
    async with await local_only(browser) as session:
        page = await session.context.new_page()
        await page.goto(f"http://127.0.0.1:{dev_stack.ports['api']}/docs")
        # Operation blocks exist only once Swagger UI's JavaScript ran and read /openapi.json.
        operations = page.locator(".opblock")
        try:
            await expect(operations.first).to_be_visible(timeout=15_000)
        finally:
            await screenshot(page, "api-docs")
        assert await operations.count() >= 5
        await expect(page.locator(".opblock-summary-path", has_text="/orders/{accession}").first).to_be_visible()
        assert session.blocked == [], f"/docs asked for outside resources: {session.blocked}"


async def test_api_redoc_renders_without_internet(dev_stack: DevStack, browser: Browser) -> None:
    async with await local_only(browser) as session:
        page = await session.context.new_page()
        await page.goto(f"http://127.0.0.1:{dev_stack.ports['api']}/redoc")
        # ReDoc's JavaScript renders each operation's summary and its parameters from /openapi.json.
        try:
            await expect(page.get_by_role("heading", name="List orders (eventually consistent)")).to_be_visible(timeout=15_000)
        finally:
            await screenshot(page, "api-redoc")
        await expect(page.get_by_text("QUERY PARAMETERS").first).to_be_visible()
        # ReDoc's bundle links its own "API docs by Redocly" logo from its CDN: cosmetic, nothing else may go out.
        outside = [u for u in session.blocked if u != REDOC_LOGO]
        assert outside == [], f"/redoc asked for outside resources: {outside}"
