from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from radflow.devstack import find_binary
from radflow.service.temporal import ensure_search_attributes


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping test server per test (starts in < 0.3 s).

    Shared across tests, timers of earlier tests' orders (whose workers are gone) would fire
    into task queues nobody polls and stall time skipping.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    # The test server knows no custom search attributes until they are registered.
    await ensure_search_attributes(env.client, assume_none=True)
    yield env
    await env.shutdown()
