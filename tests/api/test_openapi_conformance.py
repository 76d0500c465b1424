"""schemathesis against radflow's own OpenAPI document (bounded, a few minutes at most).

The real app runs under uvicorn on loopback with a real worker and the session Temporal
dev server, so routes that need Temporal answer for real. Every operation gets schema-valid
(positive) and schema-violating (negative) examples; schemathesis' default checks apply:
no 5xx, only documented status codes, content types and headers, bodies matching their
schemas, and negative input refused. Example counts: RADFLOW_SCHEMATHESIS_EXAMPLES.

It runs twice: with authentication off, and on (an API key with the admin role sent on every
call; the document then declares bearer auth, 401/403, and schemathesis also checks that a
call without the key is refused).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance
from pydantic import SecretStr
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.api.fhir_stack import serve, stack_settings
from tests.factories import make_order

# Schema-valid but semantically wrong input (a page token we never issued, scheduled_from
# after scheduled_to) is a 422 no schema can express; every other default check applies.
EXCLUDED = [positive_data_acceptance]
EXAMPLES = int(os.environ.get("RADFLOW_SCHEMATHESIS_EXAMPLES", "15"))
ADMIN_KEY = "schemathesis-admin-0123456789abcdef"


@dataclass
class Api:
    url: str
    headers: dict[str, str]


@pytest.fixture(params=["auth-off", "auth-on"])
async def api(request: pytest.FixtureRequest, client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Api]:
    cfg = stack_settings(task_queue, tmp_path)
    headers: dict[str, str] = {}
    if request.param == "auth-on":
        cfg = cfg.model_copy(update={"api_keys": SecretStr(f"conformance:admin:{ADMIN_KEY}")})
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    service = order_service(client, cfg)
    # One real order, so examples that name it reach the workflow (not only 404s).
    await service.start_order(make_order("SCHEMA1"), EventSource.API, f"schemathesis-seed-{request.param}")
    async with build_worker(client, cfg), serve(create_app(cfg, service)) as url:
        yield Api(url, headers)


def _auth(case, api: Api) -> dict[str, str]:
    """The key, unless this example left the Authorization header out on purpose (then: 401)."""
    dropped = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER) \
        and "authorization" not in {k.lower() for k in (case.headers or {})}
    return {} if dropped else api.headers


def _run_operation(api: Api, operation, mode: GenerationMode) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        try:
            case.call_and_validate(base_url=api.url, headers=_auth(case, api), timeout=30, excluded_checks=EXCLUDED)
        except (Exception, BaseExceptionGroup) as err:  # collect every finding of every operation, then fail once
            failures.append(f"{operation.label} [{mode.value}]: {type(err).__name__}: {str(err)[:800]}")

    try:
        check()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.label  # no parameters: nothing to get wrong
    return failures


def _run_all(api: Api) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _run_operation(api, operation, mode)
    return failures


@pytest.mark.timeout(600)
async def test_api_conforms_to_its_openapi_document(api: Api) -> None:
    failures = await asyncio.to_thread(_run_all, api)
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} schemathesis finding(s):\n" + "\n\n".join(unique[:30])
