"""The DICOM gateway's own task queue name (issue 12.1): a setting, else derived from host name + AE title."""

from __future__ import annotations

import re

from radflow.infra.settings import Settings


def test_explicit_id_names_the_queue() -> None:
    s = Settings(task_queue="radflow-orders", dicom_gateway_id="dicom-0")
    assert s.gateway_task_queue() == "radflow-orders-dicom-dicom-0"


def test_default_id_is_host_and_ae_title_made_queue_safe() -> None:
    s = Settings(task_queue="tq", dicom_ae_title="CT GW/1")
    assert s.gateway_id().endswith("-ct-gw-1") and len(s.gateway_id()) > len("-ct-gw-1")  # host name first
    assert re.fullmatch(r"[a-z0-9.-]+", s.gateway_id())
    assert Settings(task_queue="tq", dicom_ae_title="RADFLOW").gateway_id() != Settings(
        task_queue="tq", dicom_ae_title="RADFLOW2").gateway_id()  # two gateways on one host: two queues
