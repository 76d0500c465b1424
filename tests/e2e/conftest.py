"""Fixtures of the end-to-end tests that several modules share (created only when a test asks)."""

from tests.e2e.browser import browser, dev_stack  # noqa: F401 - fixtures
