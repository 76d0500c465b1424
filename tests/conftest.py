"""Shared test environment: one real Temporal dev server per session, fresh task queue per test."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client

from radflow.devstack import DevServer, free_port
from radflow.service.temporal import DATA_CONVERTER
from radflow.infra.logs import KeyValueFormatter

# Loggers whose every call the suite exercises at DEBUG: a record is only built (and an
# `extra=` key colliding with a LogRecord attribute only raises) when its level is enabled.
DEBUG_LOGGERS = ("radflow", "temporalio.activity", "temporalio.workflow")


class FormatEveryRecord(logging.Handler):
    """Formats each record with the production formatter; formatting failures are kept, not printed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(KeyValueFormatter())
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.format(record)
        except Exception as err:  # noqa: BLE001 - any failure to format is the finding
            self.failures.append(f"{record.name}:{record.lineno} {record.msg!r}: {err!r}")


_FORMATTER = FormatEveryRecord()


def pytest_configure(config: pytest.Config) -> None:
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_FORMATTER)


@pytest.fixture(autouse=True)
def _log_records_format() -> Iterator[None]:
    """Fail the test whose code produced a log record the production formatter cannot write."""
    start = len(_FORMATTER.failures)
    yield
    failures = _FORMATTER.failures[start:]
    assert not failures, "log records that failed to format:\n" + "\n".join(failures)


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    log = tmp_path_factory.mktemp("temporal") / "dev-server.log"
    server = DevServer(db_file=None, port=free_port(), ui_port=None, log_file=log)
    await server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(dev_server: DevServer) -> Client:
    return await Client.connect(dev_server.address, data_converter=DATA_CONVERTER)  # the converter radflow uses


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


# --- PostgreSQL read models (issue 12): one throwaway cluster per session, started on first use ---
@pytest.fixture(scope="session")
def pg() -> Iterator[object]:
    from tests.pg_cluster import pg_cluster

    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg) -> Iterator[str]:
    """A fresh database of the session cluster (its process-wide pool is closed afterwards)."""
    from radflow.infra.read_model_db import close_pool

    url = pg.create_database()
    yield url
    close_pool(url)
