"""The gateway id belongs to the spool, not to the host name.

`archive_study` for a spooled study runs on the queue `<task queue>-dicom-<gateway id>`, and the study's
order keeps that queue. Without RADFLOW_DICOM_GATEWAY_ID the id comes from the host name: renaming the
host (or moving the spool's disk to a new machine) would start a gateway on a new queue while the
orders of the spooled studies wait on the old one. So the first start writes the id into the spool
directory and later starts read it back; an explicit setting still wins, with a warning when it
differs from the one the spool was served under.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from radflow.gateways.dicom.spool import spool_dir
from radflow.infra.private_files import FILE_MODE, private_dir
from radflow.infra.settings import Settings

log = logging.getLogger(__name__)
ID_FILE = "gateway-id"


def pin_gateway_id(settings: Settings) -> Settings:
    """Settings whose gateway id is the one this spool is served under (recorded on first use)."""
    path = private_dir(spool_dir(settings)) / ID_FILE
    recorded = _read(path)
    if recorded and not settings.dicom_gateway_id:
        return settings.model_copy(update={"dicom_gateway_id": recorded})
    wanted = settings.gateway_id()
    if recorded and recorded != wanted:
        log.warning("the spool was served as another DICOM gateway: studies spooled then are archived from that "
                    "gateway's task queue, which this process does not serve",
                    extra={"spool_gateway_id": recorded, "gateway_id": wanted})
    if recorded != wanted:
        _write(path, wanted)
    return settings.model_copy(update={"dicom_gateway_id": wanted})


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return ""


def _write(path: Path, value: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
