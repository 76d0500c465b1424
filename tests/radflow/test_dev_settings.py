"""`radflow dev` settings: what the one-process stack changes in the configuration it is given."""

from __future__ import annotations

from pathlib import Path

from radflow.dev import dev_settings
from radflow.devstack import DevServer
from radflow.infra.settings import Settings


def _dev(tmp_path: Path, **values: object) -> Settings:
    return dev_settings(Settings(_env_file=None, data_dir=tmp_path, **values), DevServer(port=7299))


def test_without_a_fhir_server_new_orders_get_no_fhir_sync_lane(tmp_path: Path) -> None:
    settings = _dev(tmp_path)
    assert settings.sync_consumers == ["worklist"]
    assert settings.order_policy().sync_consumers == ["worklist"]
    # Report delivery keeps its lanes: their "not configured" outcome is what ends an order COMPLETED.
    assert settings.report_consumers == Settings(_env_file=None).report_consumers


def test_with_a_fhir_server_the_fhir_sync_lane_stays(tmp_path: Path) -> None:
    settings = _dev(tmp_path, fhir_base_url="http://127.0.0.1:8103/fhir/R4")
    assert settings.sync_consumers == ["worklist", "fhir"]
    assert _dev(tmp_path, sync_consumers=["fhir"], fhir_base_url="").sync_consumers == []
