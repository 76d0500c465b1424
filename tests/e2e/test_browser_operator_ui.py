"""An operator in the Temporal UI of `radflow dev` (headless Chromium): what the order page
says, and what a mistyped operator update gets back.

Issue 11: a mistyped update showed a Python traceback with the worker's file paths. Here the
operator opens "Send an Update", picks `operator` (its description says what to type), types
`{"action": "retyr"}` and reads one line: the refusal, nothing else.
"""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import Error as PlaywrightError

from radflow.infra.mllp_client import send_messages
from tests.e2e.browser import DevStack, local_only, screenshot
from tests.radflow.hl7_messages import adt_a04, orm_nw

pytestmark = pytest.mark.integration


async def _send_update(page: Page, data: str) -> None:
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name="Send an Update").click()
    dialog = page.locator("dialog[open], [role=dialog]:visible").filter(has_text="Send an Update").last
    await dialog.locator("#update-select").evaluate("e => e.parentElement.click()")
    # The update's description is in the picker: the operator sees what to type before typing.
    option = page.get_by_role("option").filter(has_text="Operator decision").first
    await expect(option).to_contain_text('{"action": "retry", "lane": "hl7"}')
    await option.click()
    await dialog.locator(".cm-content").click()
    await page.keyboard.type(data)
    await dialog.get_by_role("button", name="Submit").click()


async def _rendered(page: Page, *texts: str, timeout_s: float = 30) -> str:
    """The text of the UI's markdown frames once every text is there (the UI loads them after the page)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = ""
        for frame in page.frames:
            if "/render" in frame.url:
                try:
                    shown += await frame.locator("body").inner_text(timeout=5_000) + "\n"
                except PlaywrightError as err:  # the UI re-rendered it (details refresh): read the new one
                    if "detached" not in str(err):
                        raise
        if all(t in shown for t in texts) or time.monotonic() > deadline:
            return shown
        await page.wait_for_timeout(300)


async def test_order_page_shows_metadata_and_a_mistyped_update_gets_one_line(dev_stack: DevStack,
                                                                             browser: Browser) -> None:
    acc = "OP" + uuid.uuid4().hex[:8].upper()
    mrn = "MOP" + uuid.uuid4().hex[:6].upper()
    acks = await send_messages("127.0.0.1", dev_stack.ports["mllp"],
                               [adt_a04(mrn, f"A04-{acc}").encode(), orm_nw(acc, mrn, f"NW-{acc}").encode()])
    assert all(b"MSA|AA" in ack for ack in acks), acks

    async with await local_only(browser) as session:
        page = await session.context.new_page()
        base = dev_stack.ui_url.removesuffix("/workflows")
        await page.goto(f"{base}/workflows/order-{acc}")
        await page.get_by_role("tab", name="User Metadata").click()
        # Summary, details and current details are markdown, each rendered in its own frame.
        shown = await _rendered(page, f"CT head without contrast · {acc} · unscheduled", "Status: ORDERED",
                                f"radflow orders show {acc}")
        assert f"CT head without contrast · {acc} · unscheduled" in shown and "Status: ORDERED" in shown, shown
        api = f"http://127.0.0.1:{dev_stack.ports['api']}/orders/{acc}/timeline"
        assert api in shown, shown  # the links point at the dev stack's own API
        assert mrn not in shown and "Testpatient" not in shown, shown
        await screenshot(page, "temporal-ui-user-metadata")

        await _send_update(page, '{"action": "retyr"')  # the editor closes the brace itself
        dialog = page.locator("dialog[open], [role=dialog]:visible").filter(has_text="Send an Update").last
        await expect(dialog).to_contain_text("refused: unknown operator action 'retyr' (use retry|skip)")
        await screenshot(page, "temporal-ui-operator-update-refused")
        text = await dialog.inner_text()
        assert "Traceback" not in text and ".py" not in text and 'File "' not in text, text
