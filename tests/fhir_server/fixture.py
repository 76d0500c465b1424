"""Runs the FHIR server radflow ships (radflow/fhir_server: Medplum's engine) for pytest.

Its npm dependencies are installed on first use into `tests/fhir_server/runtime` (gitignored)
under a file lock, so parallel test runs in one working tree install once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from radflow.fhir_server import FhirServer, ensure_runtime

RUNTIME = Path(__file__).resolve().parent / "runtime"


def ensure_node_modules() -> None:
    ensure_runtime(RUNTIME)


class FhirTestServer(FhirServer):
    def __init__(self, *, port: int | None = None, host: str = "127.0.0.1", token: str = "",
                 data_file: Path | None = None, log_file: Path | None = None) -> None:
        super().__init__(RUNTIME, port=port, host=host, token=token, data_file=data_file, log_file=log_file)


@pytest.fixture(scope="module")
async def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FhirTestServer]:
    """One FHIR server per test module (import this fixture into the module that needs it)."""
    where = tmp_path_factory.mktemp("fhir")
    server = FhirTestServer(data_file=where / "store.json", log_file=where / "server.log")
    await server.start()
    yield server
    server.close()
