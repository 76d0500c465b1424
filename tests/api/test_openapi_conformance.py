"""schemathesis against radflow's own OpenAPI document (bounded, a few minutes at most).

The real app runs under uvicorn on loopback with a real worker and the session Temporal
dev server, so routes that need Temporal answer for real. Every operation gets schema-valid
(positive) and schema-violating (negative) examples; schemathesis' default checks apply:
no 5xx, only documented status codes, content types and headers, bodies matching their
schemas, and negative input refused. Example counts: RADFLOW_SCHEMATHESIS_EXAMPLES.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from temporalio.client import Client

from api.app import create_app
from domain.definitions import EventSource
from radflow.wiring import order_service
from radflow.worker import build_worker
from tests.api.fhir_stack import serve, stack_settings
from tests.factories import make_order

# Schema-valid but semantically wrong input (a page token we never issued, scheduled_from
# after scheduled_to) is a 422 no schema can express; every other default check applies.
EXCLUDED = [positive_data_acceptance]
EXAMPLES = int(os.environ.get("RADFLOW_SCHEMATHESIS_EXAMPLES", "15"))


@pytest.fixture
async def api_url(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[str]:
    cfg = stack_settings(task_queue, tmp_path)
    service = order_service(client, cfg)
    # One real order, so examples that name it reach the workflow (not only 404s).
    await service.start_order(make_order("SCHEMA1"), EventSource.API, "schemathesis-seed")
    async with build_worker(client, cfg), serve(create_app(cfg, service)) as url:
        yield url


def _run_operation(url: str, operation, mode: GenerationMode) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        try:
            case.call_and_validate(base_url=url, timeout=30, excluded_checks=EXCLUDED)
        except (Exception, BaseExceptionGroup) as err:  # collect every finding of every operation, then fail once
            failures.append(f"{operation.label} [{mode.value}]: {type(err).__name__}: {str(err)[:800]}")

    try:
        check()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.label  # no parameters: nothing to get wrong
    return failures


def _run_all(url: str) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _run_operation(url, operation, mode)
    return failures


@pytest.mark.timeout(600)
async def test_api_conforms_to_its_openapi_document(api_url: str) -> None:
    failures = await asyncio.to_thread(_run_all, api_url)
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} schemathesis finding(s):\n" + "\n\n".join(unique[:30])
