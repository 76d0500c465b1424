"""The Temporal UI of `radflow dev` in headless Chromium, as an operator uses it.

`radflow dev` runs as a separate process on free ports; an order arrives over MLLP (ADT
then ORM); the operator searches the workflow list by accession, opens the order and reads
it. Payloads are encrypted in Temporal and shown decoded through radflow's codec server, and
the order's user metadata (summary, details, current details) is there, without PHI.
"""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.async_api import Browser, Page, expect
from temporalio.client import Client

from radflow.infra.mllp_client import send_messages
from tests.e2e.browser import DevStack, local_only, screenshot
from tests.radflow.hl7_messages import adt_a04, orm_nw

pytestmark = pytest.mark.integration

NEWS_FEED = "https://newsfeed.temporal.io/"


async def _search_by_accession(page: Page, ui_url: str, accession: str, timeout_s: float = 30) -> None:
    """Type the query into the workflow list's search box; refresh while visibility catches up."""
    await page.goto(ui_url)
    await page.get_by_test_id("toggle-manual-query").click()
    box = page.get_by_test_id("workflow-manual-search-input")
    await box.fill(f'AccessionNumber = "{accession}"')
    await box.press("Enter")
    link = page.locator("table a", has_text=f"order-{accession}")
    deadline = time.monotonic() + timeout_s
    while await link.count() == 0:
        assert time.monotonic() < deadline, f"order-{accession} not listed for its accession after {timeout_s}s"
        await page.wait_for_timeout(500)
        await page.get_by_role("button", name="Refresh").first.click()
    await expect(link).to_have_count(1)


async def test_operator_finds_an_order_by_accession_and_reads_it(dev_stack: DevStack, browser: Browser) -> None:
    acc = "UI" + uuid.uuid4().hex[:8].upper()
    mrn = "MUI" + uuid.uuid4().hex[:6].upper()
    acks = await send_messages("127.0.0.1", dev_stack.ports["mllp"],
                               [adt_a04(mrn, f"A04-{acc}").encode(), orm_nw(acc, mrn, f"NW-{acc}").encode()])
    assert all(b"MSA|AA" in ack for ack in acks), acks

    async with await local_only(browser) as session:
        page = await session.context.new_page()
        await _search_by_accession(page, dev_stack.ui_url, acc)
        await screenshot(page, "temporal-ui-search-by-accession")

        await page.locator("table a", has_text=f"order-{acc}").first.click()
        await page.wait_for_url(f"**/workflows/order-{acc}/**")
        main = page.locator("main")
        await expect(main.get_by_text(f"order-{acc}").first).to_be_visible()

        # The workflow input, decoded: readable JSON with the order's identifiers (with payload
        # encryption on, only the codec server can make it so).
        await expect(main).to_contain_text(f'"accession": "{acc}"')
        await expect(main).to_contain_text('"code": "CTHEAD"')
        # ... while what Temporal stores is encrypted: a client without the codec sees ciphertext.
        raw = await Client.connect(f"127.0.0.1:{dev_stack.ports['temporal']}")
        history = await raw.get_workflow_handle(f"order-{acc}").fetch_history()
        [stored] = history.events[0].workflow_execution_started_event_attributes.input.payloads
        assert stored.metadata["encoding"] == b"binary/encrypted"
        assert acc.encode() not in stored.data and mrn.encode() not in stored.data

        # User metadata: the order's summary, its static details (identifiers, a link to this
        # stack's API) and the current details (status and lanes), none of it with PHI. The UI
        # renders each (markdown) in its own frame.
        await page.get_by_role("tab", name="User Metadata").click()
        summary = page.frame_locator("iframe#user-metadata-summary").locator("body")
        details = page.frame_locator("iframe#user-metadata-details").locator("body")
        current = page.frame_locator("iframe#user-metadata-current-details").locator("body")
        try:
            await expect(summary).to_contain_text(f"CT head without contrast · {acc}")
            await expect(details).to_contain_text(f"Accession: {acc}")
            api = f"http://127.0.0.1:{dev_stack.ports['api']}/orders/{acc}"
            await expect(details.get_by_role("link", name=api, exact=True)).to_be_visible()
            await expect(current).to_contain_text("Status: ORDERED")
            await expect(current).to_contain_text("Lanes: worklist:")
        finally:
            await screenshot(page, "temporal-ui-order")
        for frame in (summary, details, current):
            text = await frame.inner_text()
            assert "Testpatient" not in text and mrn not in text and "19800202" not in text, text

        # It worked with nothing beyond this machine (a hospital network has no internet). The UI's
        # only outside call is its news feed (the "Open news feed" bell), which it does without.
        outside = [u for u in session.blocked if not u.startswith(NEWS_FEED)]
        assert outside == [], outside
