"""Issue 12.3: a modality fails over to the second DICOM gateway in the middle of a study.

Two `radflow dicom` processes (own spools, own archive queues) on one PostgreSQL, Orthanc as the
archive. The modality stores 2 of 3 instances at gateway A, which tells the order that images
are arriving and is then killed (-9) before the study is stable; the modality resends the whole
study to gateway B and completes its MPPS there. A comes back with its partial copy. The order
must end ACQUIRED with all 3 instances in the archive, not settle on A's partial copy.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from temporalio.client import Client

from radflow.devstack import DevServer, free_port
from radflow.dicom_synth import SyntheticStudy
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.dicom_peers import Orthanc, orthanc  # noqa: F401  (fixture)
from tests.factories import make_order, new_accession
from tests.gateways.dicom.mpps_scu import MppsScu, completed_refs, in_progress
from tests.radflow import procs
from tests.stack import stack_settings
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


class Gateway:
    """`radflow dicom` as an operator starts it; restartable with the same id, spool and ports."""

    def __init__(self, name: str, home: Path, env: dict[str, str]) -> None:
        self.name, self.home = name, home
        self.port, self.health = free_port(), free_port()
        home.mkdir(parents=True, exist_ok=True)
        self.env = env | {"RADFLOW_DICOM_GATEWAY_ID": name, "RADFLOW_DATA_DIR": str(home),
                          "RADFLOW_DICOM_HOST": "127.0.0.1", "RADFLOW_DICOM_PORT": str(self.port),
                          "RADFLOW_HEALTH_HOST": "127.0.0.1", "RADFLOW_HEALTH_PORT": str(self.health)}
        self.proc = None

    async def start(self) -> None:
        self.proc = procs.start("dicom", self.env, self.home / "process.log")
        ready = await eventually(lambda: procs.get(f"http://127.0.0.1:{self.health}/readyz"),
                                 lambda r: r is not None and r.status_code == 200, timeout_s=60, every_s=0.2)
        assert ready is not None and ready.status_code == 200, (self.home / "process.log").read_text()[-2000:]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


def store(port: int, images: list) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(str(images[0].SOPClassUID))
    assoc = ae.associate("127.0.0.1", port, ae_title="RADFLOW")
    assert assoc.is_established
    try:
        for image in images:
            assert assoc.send_c_store(image).Status == 0x0000
    finally:
        assoc.release()


async def test_study_resent_to_the_other_gateway_is_archived_whole(client: Client, dev_server: DevServer,
                                                                   task_queue: str, pg_url: str, tmp_path: Path,
                                                                   orthanc: Orthanc) -> None:  # noqa: F811
    archive = {"RADFLOW_DICOM_ARCHIVE_HOST": "127.0.0.1", "RADFLOW_DICOM_ARCHIVE_PORT": str(orthanc.dicom_port),
               "RADFLOW_DICOM_ARCHIVE_AE_TITLE": orthanc.aet}
    env = {"RADFLOW_TEMPORAL_ADDRESS": dev_server.address, "RADFLOW_TASK_QUEUE": task_queue,
           "RADFLOW_READ_MODEL_URL": pg_url, "RADFLOW_DICOM_STABLE_AGE_S": "3", "RADFLOW_LOG_LEVEL": "INFO", **archive}
    settings = stack_settings(task_queue, data_dir=tmp_path / "worker", read_model_url=pg_url,
                              sync_consumers=["worklist"], acquisition_consumers=["archive"], report_consumers=[],
                              dicom_archive_host="127.0.0.1", dicom_archive_port=orthanc.dicom_port,
                              dicom_archive_ae_title=orthanc.aet)
    service = order_service(client, settings)
    order = make_order(new_accession("SPLIT"))
    images = list(SyntheticStudy(order.accession, series=[("CT", 3)], size=16).datasets())
    study_uid = str(images[0].StudyInstanceUID)
    a, b = Gateway("gw-a", tmp_path / "gw-a", env), Gateway("gw-b", tmp_path / "gw-b", env)
    try:
        async with build_worker(client, settings):
            await asyncio.gather(a.start(), b.start())
            await service.start_order(order, EventSource.HL7, "ORM-SPLIT-1")
            mpps_uid = generate_uid()
            created = await asyncio.to_thread(MppsScu(a.port).create, in_progress(accession=order.accession), mpps_uid)
            assert created.status == 0x0000, created

            # Two of three instances reach A; A tells the order images are arriving, then dies.
            await asyncio.to_thread(store, a.port, images[:2])
            arriving = await eventually(lambda: service.get_state(order.accession),
                                        lambda s: s.study.instance_count >= 1, timeout_s=30)
            assert arriving.study.archive_queue.endswith("gw-a"), arriving.study
            a.kill()

            # The modality resends the whole study to B and completes its MPPS there.
            await asyncio.to_thread(store, b.port, images)
            sops = [str(i.SOPInstanceUID) for i in images]
            done = await asyncio.to_thread(MppsScu(b.port).set, completed_refs({str(images[0].SeriesInstanceUID): sops}),
                                           mpps_uid)
            assert done.status == 0x0000, done
            await a.start()  # back, with its partial copy of the study in its spool

            state = await eventually(lambda: service.get_state(order.accession),
                                     lambda s: s.status == OrderStatus.ACQUIRED and orthanc.study_instance_count(study_uid) == 3,
                                     timeout_s=60)
            await asyncio.sleep(5)  # A's late "stable" news (2 instances) must not undo the whole study
            state = await service.get_state(order.accession)
    finally:
        a.stop()
        b.stop()
    assert state.status == OrderStatus.ACQUIRED, (state.status, state.study, state.lanes)
    assert state.study.instance_count == 3, state.study
    assert orthanc.study_instance_count(study_uid) == 3
