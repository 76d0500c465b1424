"""The DICOM gateway's id (and so its archive task queue) follows its spool, not the host name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from radflow.gateways.dicom.gateway_identity import ID_FILE, pin_gateway_id
from radflow.infra.private_files import FILE_MODE
from radflow.infra.settings import Settings


def _settings(tmp_path: Path, **values) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, task_queue="radflow-orders", **values)


def test_the_first_start_records_the_id_and_a_renamed_host_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "modality-host-a")
    first = pin_gateway_id(_settings(tmp_path))
    assert first.gateway_task_queue() == "radflow-orders-dicom-modality-host-a-radflow"
    recorded = tmp_path / "spool" / ID_FILE
    assert recorded.read_text().strip() == first.gateway_id()
    assert recorded.stat().st_mode & 0o777 == FILE_MODE

    monkeypatch.setattr("socket.gethostname", lambda: "renamed-host-b")
    assert _settings(tmp_path).gateway_id() == "renamed-host-b-radflow"  # what the host name alone would give
    again = pin_gateway_id(_settings(tmp_path))
    assert again.gateway_task_queue() == first.gateway_task_queue()  # the spooled studies' queue


def test_an_explicit_id_wins_and_a_change_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert pin_gateway_id(_settings(tmp_path, dicom_gateway_id="dicom-0")).gateway_id() == "dicom-0"
    assert pin_gateway_id(_settings(tmp_path)).gateway_id() == "dicom-0"  # the setting removed: the spool's id
    with caplog.at_level(logging.INFO, logger="radflow.gateways.dicom.gateway_identity"):
        moved = pin_gateway_id(_settings(tmp_path, dicom_gateway_id="dicom-7"))
    assert moved.gateway_id() == "dicom-7"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.spool_gateway_id == "dicom-0" and warning.gateway_id == "dicom-7"  # type: ignore[attr-defined]
    assert (tmp_path / "spool" / ID_FILE).read_text().strip() == "dicom-7"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="radflow.gateways.dicom.gateway_identity"):
        assert pin_gateway_id(_settings(tmp_path, dicom_gateway_id="dicom-7")).gateway_id() == "dicom-7"
    assert not caplog.records  # the same id again: nothing to say


def test_a_configured_spool_dir_holds_the_id(tmp_path: Path) -> None:
    spool = tmp_path / "elsewhere"
    pinned = pin_gateway_id(_settings(tmp_path / "data", dicom_spool_dir=spool, dicom_gateway_id="gw-a"))
    assert pinned.gateway_id() == "gw-a" and (spool / ID_FILE).read_text().strip() == "gw-a"
