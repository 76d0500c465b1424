"""Acceptance 2, end to end: MPPS IN PROGRESS -> COMPLETED, then the images (DCMTK storescu) -> ACQUIRED.

The order reaches ACQUIRED only once every instance the MPPS referenced has arrived and the
study was quiet for the stable age; before that the API keeps showing IN_PROGRESS.
No archive is configured here (the spool is the store); archive confirmation is tested
with Orthanc on the storage side.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.dicom.uids import study_uid_for_accession
from radflow.gateways.dicom.server import start_dicom_gateway
from tests.dicom_synth import SyntheticStudy
from tests.factories import make_order
from tests.gateways.dicom.dcmtk import require_dcmtk, run
from tests.gateways.dicom.gateway_stack import dicom_settings
from tests.gateways.dicom.mpps_scu import MppsScu, completed_refs, in_progress
from tests.stack import running_stack
from tests.waiting import eventually

pytestmark = pytest.mark.integration

STORESCU = "/usr/bin/storescu"


async def storescu(port: int, files: list[Path]) -> None:
    code, output = await run(STORESCU, "-aet", "MODALITY1", "-aec", "RADFLOW", "127.0.0.1", str(port), *map(str, files))
    assert code == 0, output


async def test_mpps_then_images_reach_acquired_only_when_all_referenced_arrived(client: Client, task_queue: str,
                                                                                 tmp_path: Path) -> None:
    require_dcmtk()
    settings = dicom_settings(task_queue, tmp_path / "data", dicom_stable_age_s=0.5)
    async with running_stack(client, settings, api=False) as stack:
        gateway = await start_dicom_gateway(settings, stack.service, with_storage=True)
        assert gateway.storage is not None
        app = create_app(settings, stack.service)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as api:
                order = make_order(f"MI{uuid.uuid4().hex[:8].upper()}")
                await stack.service.start_order(order, EventSource.HL7, uuid.uuid4().hex)
                acc = order.accession
                study_uid = study_uid_for_accession(acc)  # what the modality took from the worklist
                mpps = MppsScu(gateway.port)
                uid = generate_uid()
                assert (await asyncio.to_thread(mpps.create, in_progress(accession=acc, study_uid=study_uid), uid)).status == 0
                assert (await api.get(f"/orders/{acc}")).json()["status"] == OrderStatus.IN_PROGRESS

                files = SyntheticStudy(accession=acc, study_uid=study_uid, series=[("CT", 3), ("CT", 2)], size=32).write(
                    tmp_path / "study")
                refs: dict[str, list[str]] = defaultdict(list)
                for f in files:
                    ds = dcmread(f, stop_before_pixels=True)
                    refs[ds.SeriesInstanceUID].append(ds.SOPInstanceUID)
                assert (await asyncio.to_thread(mpps.set, completed_refs(dict(refs)), uid)).status == 0

                await storescu(gateway.port, files[:3])
                waiting = await eventually(lambda: stack.service.get_state(acc),
                                           lambda s: s.study.stable and s.study.instance_count == 3, timeout_s=15)
                assert waiting.study.instance_count == 3 and waiting.study.expected_instance_count == 5
                assert waiting.status == OrderStatus.IN_PROGRESS
                assert any("3 of 5" in e.summary for e in waiting.timeline)

                await storescu(gateway.port, files[3:])
                done = await eventually(lambda: stack.service.get_state(acc),
                                        lambda s: s.status == OrderStatus.ACQUIRED, timeout_s=15)
                assert done.status == OrderStatus.ACQUIRED and done.study.instance_count == 5
                body = (await api.get(f"/orders/{acc}")).json()
                assert body["status"] == OrderStatus.ACQUIRED
        finally:
            await gateway.stop()
