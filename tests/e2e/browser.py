"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

One browser per test module (import the `browser` fixture into the module); one `radflow dev`
process (`dev_stack`, a separate process on free ports) for every browser test of the session. Every page is
confined to this machine: requests to any other host are aborted and recorded, so a page
that needs the internet shows it (e.g. Swagger UI assets from a CDN) instead of passing
on a connected laptop and failing in a hospital. Screenshots go to the test results folder
(RADFLOW_TEST_RESULTS, default test-results/) under browser/.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from tests.e2e.radflow_process import RadflowProcess, free_ports, port_flags

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def results_dir() -> Path:
    base = Path(os.environ.get("RADFLOW_TEST_RESULTS") or ROOT / "test-results")
    where = base / "browser"
    where.mkdir(parents=True, exist_ok=True)
    return where


async def screenshot(page: Page, name: str) -> Path:
    path = results_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not installed: apt-get install -y chromium (scripts/test.sh does it when root)")
    # The UI decodes payloads through the codec server one request at a time: on a loaded
    # machine that takes longer than expect()'s default 5 s.
    expect.set_options(timeout=30_000)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@dataclass
class DevStack:
    process: RadflowProcess
    ports: dict[str, int]
    ui_url: str  # the workflow list, as the banner prints it


@pytest.fixture(scope="session")
async def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevStack]:
    ports = free_ports("temporal", "ui", "mllp", "api", "dicom")
    data = tmp_path_factory.mktemp("browser-dev") / "data"
    proc = await RadflowProcess(["dev", "--data-dir", str(data), *port_flags(ports)]).start()
    try:
        await proc.wait_healthy(f"http://127.0.0.1:{ports['api']}/healthz")
        line = await proc.wait_for_line("Temporal UI")
        yield DevStack(proc, ports, line.split()[-1])
    finally:
        code = await proc.stop()
    assert code == 0, proc.output[-3000:]


class LocalOnly:
    """A browser context whose requests may reach this machine only; the others are listed."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.blocked: list[str] = []

    async def _route(self, route: Route) -> None:
        url = route.request.url
        scheme = urlsplit(url).scheme
        if scheme in ("data", "blob", "about") or urlsplit(url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort("internetdisconnected")

    async def __aenter__(self) -> LocalOnly:
        await self.context.route("**/*", self._route)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.context.close()


async def local_only(browser: Browser) -> LocalOnly:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(30_000)
    return LocalOnly(context)
