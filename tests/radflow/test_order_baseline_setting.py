"""RADFLOW_ORDER_BASELINE: the baseline the gateways and the API start new orders at (docs/workflow.md "Upgrades")."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import Client

from radflow.domain import definitions as d
from radflow.infra.settings import Settings
from radflow.service.wiring import order_service

pytestmark = pytest.mark.integration


async def test_the_service_starts_at_the_configured_baseline(client: Client, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RADFLOW_ORDER_BASELINE", raising=False)
    assert order_service(client, Settings(_env_file=None, data_dir=tmp_path)).baseline == d.ORDER_BASELINE
    monkeypatch.setenv("RADFLOW_ORDER_BASELINE", "0")  # while workers of an older version may still run
    assert order_service(client, Settings(_env_file=None, data_dir=tmp_path)).baseline == 0


def test_a_baseline_this_version_does_not_know_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_ORDER_BASELINE", str(d.ORDER_BASELINE + 1))
    with pytest.raises(ValidationError):
        Settings(_env_file=None, data_dir=tmp_path)
