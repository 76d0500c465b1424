"""Shared test environment: one real Temporal dev server per session, fresh task queue per test."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from radflow.devstack import DevServer, free_port


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    log = tmp_path_factory.mktemp("temporal") / "dev-server.log"
    server = DevServer(db_file=None, port=free_port(), ui_port=None, log_file=log)
    await server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(dev_server: DevServer) -> Client:
    return await Client.connect(dev_server.address, data_converter=pydantic_data_converter)


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


# temporalio workers can crash while the interpreter finalizes (SIGABRT/SIGSEGV after a clean
# shutdown, temporalio/sdk-python#300). Once pytest has printed its summary and computed the
# exit status we leave without finalization, so the status we return is the tests' verdict.
_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _exit_status and os.environ.get("RADFLOW_TEST_HARD_EXIT", "1") == "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
