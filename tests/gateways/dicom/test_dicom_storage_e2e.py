"""Storage end to end against real peers: DCMTK storescu -> radflow (DicomGateway + StorageService)
-> Orthanc, with the real worker (archive_study) on the session's Temporal dev server.

Acceptance 3 (ACQUIRED only once Orthanc's count matches), 4 (unsolicited study -> exception
-> link) and 5 (kill -9 of the gateway process, no instance lost or duplicated).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pytest
from pynetdicom import AE
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.order import OperatorAction, OrderState
from radflow.gateways.dicom.server import DicomGateway, start_dicom_gateway
from radflow.gateways.dicom.spool import Spool, spool_dir
from radflow.gateways.dicom.tcp import NODELAY_HANDLER
from radflow.devstack import DevServer, free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.dicom_peers import Orthanc, orthanc, storescu  # noqa: F401  (module-scoped fixture)
from tests.dicom_synth import SyntheticStudy
from tests.factories import make_order, new_accession
from tests.waiting import eventually

pytestmark = pytest.mark.integration

STABLE_AGE_S = 2.0  # long enough that a loaded machine's pause inside one storescu run is not a quiet period


def settings_for(tmp_path: Path, task_queue: str, orthanc: Orthanc, **overrides) -> Settings:  # noqa: F811
    values = dict(
        task_queue=task_queue,
        data_dir=tmp_path / "radflow",
        dicom_host="127.0.0.1",
        dicom_port=free_port(),
        dicom_ae_title=orthanc.known_aet,
        dicom_stable_age_s=STABLE_AGE_S,
        dicom_archive_host="127.0.0.1",
        dicom_archive_port=orthanc.dicom_port,
        dicom_archive_ae_title=orthanc.aet,
        dicom_archive_timeout_s=10.0,
        acquisition_consumers=["archive"],
        report_consumers=["hl7"],
        sync_consumers=[],
        step_max_attempts=2,
        step_initial_interval_s=0.2,
        step_max_interval_s=0.5,
        temporal_rpc_timeout_s=5.0,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Radflow:
    settings: Settings
    service: OrderService
    gateway: DicomGateway | None
    api: httpx.AsyncClient

    @property
    def port(self) -> int:
        return self.settings.dicom_port

    async def state(self, accession: str) -> OrderState:
        return await self.service.get_state(accession)

    async def wait_status(self, accession: str, *statuses: OrderStatus, timeout_s: float = 30.0) -> OrderState:
        return await eventually(lambda: self.state(accession), lambda s: s.status in statuses, timeout_s=timeout_s)

    async def wait_acquired(self, accession: str, instances: int, timeout_s: float = 40.0) -> OrderState:
        return await wait_acquired(self.service, accession, instances, timeout_s)


async def wait_acquired(service: OrderService, accession: str, instances: int, timeout_s: float = 40.0) -> OrderState:
    """ACQUIRED with the archive step confirmed for exactly this many instances."""
    return await eventually(lambda: service.get_state(accession),
                            lambda s: s.status == OrderStatus.ACQUIRED
                            and s.deliveries.get("acquisition:archive") == f"n{instances}:delivered",
                            timeout_s=timeout_s)


@pytest.fixture
async def radflow(client: Client, task_queue: str, tmp_path: Path, orthanc: Orthanc) -> AsyncIterator[Radflow]:  # noqa: F811
    async with open_radflow(client, settings_for(tmp_path, task_queue, orthanc)) as running:
        yield running


@asynccontextmanager
async def open_radflow(client: Client, settings: Settings) -> AsyncIterator[Radflow]:
    """A worker, the DICOM gateway and the API (in process), all from `settings`."""
    service = order_service(client, settings)
    async with build_worker(client, settings):
        gateway = await start_dicom_gateway(settings, service)
        app = create_app(settings, service)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
            try:
                yield Radflow(settings, service, gateway, http)
            finally:
                await gateway.stop()


def assert_all_stored(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Store Failed" not in result.stderr + result.stdout


def timeline_text(state: OrderState) -> list[str]:
    return [f"{e.kind}|{e.status}|{e.summary}" for e in state.timeline]


# ---------------------------------------------------------------------------------- acceptance 3
async def test_study_via_radflow_reaches_orthanc_and_then_acquired(radflow: Radflow, orthanc: Orthanc,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    order = make_order(new_accession("ST"))
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    study = SyntheticStudy(order.accession, series=[("CT", 6), ("CT", 4), ("OT", 2)], size=64)
    files = study.write(tmp_path / "study")

    assert_all_stored(storescu("127.0.0.1", radflow.port, files, calling="CT01", called=radflow.settings.dicom_ae_title))

    state = await radflow.wait_acquired(order.accession, 12)
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
    assert orthanc.study_instance_count(study.study_uid) == 12
    s = state.study
    assert (s.study_instance_uid, s.series_count, s.instance_count, s.archive_confirmed) == (study.study_uid, 3, 12, True)
    lines = timeline_text(state)
    confirmed = next(i for i, line in enumerate(lines) if "archive confirmed 12 instances" in line)
    acquired = next(i for i, e in enumerate(state.timeline) if e.status == OrderStatus.ACQUIRED)
    assert confirmed < acquired, lines  # never ACQUIRED before the archive's own count matched
    assert state.timeline[acquired].kind == "ACQUISITION_CONFIRMED"
    kinds = [e.kind for e in state.timeline]
    assert kinds.count("IMAGES_ARRIVING") == 1 and kinds.count("STUDY_STABLE") == 1, lines


async def test_archive_count_mismatch_needs_attention_then_operator_retry(radflow: Radflow, orthanc: Orthanc,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    order = make_order(new_accession("MM"))
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    study = SyntheticStudy(order.accession, series=[("CT", 5), ("CT", 3)], size=32)
    files = study.write(tmp_path / "study")
    dropped_series = str(pydicom.dcmread(files[-1], stop_before_pixels=True).SeriesInstanceUID)
    orthanc.reject_series(dropped_series)  # the archive acknowledges these but keeps nothing
    try:
        assert_all_stored(storescu("127.0.0.1", radflow.port, files, called=radflow.settings.dicom_ae_title))
        state = await eventually(lambda: radflow.state(order.accession), lambda s: s.needs_attention, timeout_s=30)
        # The status stays clinical; the archive lane waits for an operator.
        assert state.status == OrderStatus.IN_PROGRESS, timeline_text(state)
        assert state.lanes["archive"].attention == state.attention
        assert state.attention is not None and "archive has 5 of 8 instances" in state.attention.reason
        assert state.attention.step == "archive:acquisition"
        assert orthanc.study_instance_count(study.study_uid) == 5
    finally:
        orthanc.reject_series(None)

    await radflow.service.operator_action(order.accession, OperatorAction(action="retry", note="archive fixed"))
    state = await radflow.wait_acquired(order.accession, 8)
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
    assert orthanc.study_instance_count(study.study_uid) == 8
    receptions = orthanc.receptions()
    spooled = Spool(spool_dir(radflow.settings)).instances(study.study_uid)
    # Kept instances went once; dropped ones again on every attempt (2 failed + the operator's retry).
    attempts = radflow.settings.step_max_attempts + 1
    expected = {i.sop_instance_uid: (attempts if i.series_uid == dropped_series else 1) for i in spooled}
    assert {sop: receptions[sop] for sop in expected} == expected


# ---------------------------------------------------------------------------------- acceptance 4
async def test_unsolicited_study_is_an_exception_until_linked(radflow: Radflow, orthanc: Orthanc,  # noqa: F811
                                                             tmp_path: Path) -> None:
    study = SyntheticStudy(new_accession("NOPE"), series=[("CT", 3), ("CT", 2)], size=32)
    files = study.write(tmp_path / "study")
    assert_all_stored(storescu("127.0.0.1", radflow.port, files, called=radflow.settings.dicom_ae_title))

    async def listed():
        r = await radflow.api.get("/exceptions", params={"kind": "study"})
        assert r.status_code == 200, r.text
        return [i for i in r.json()["items"] if i["key"] == study.study_uid]

    items = await eventually(listed, lambda items: bool(items) and items[0]["details"].get("instance_count") == 5,
                             timeout_s=20)
    assert items, "unsolicited study not listed"
    item = items[0]
    assert item["reason"] == f"no order with accession {study.accession}"
    assert item["details"]["accession"] == study.accession and item["details"]["series_count"] == 2
    assert not item["resolved"]
    assert orthanc.study_instance_count(study.study_uid) == 0  # kept in the spool, not forwarded

    order = make_order(new_accession("LNK"))
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    missing = await radflow.api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": "1.2.3.999"})
    assert missing.status_code == 404

    linked = await radflow.api.post(f"/orders/{order.accession}/link-study",
                                    json={"study_instance_uid": study.study_uid, "note": "wrong accession typed at the console"})
    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert (body["instance_count"], body["series_count"], body["resolved"]) == (5, 2, True)
    again = await radflow.api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": study.study_uid})
    assert again.status_code == 200  # a retried POST changes nothing
    other = make_order(new_accession("OTH"))
    await radflow.service.start_order(other, EventSource.HL7, "ORM1")
    conflict = await radflow.api.post(f"/orders/{other.accession}/link-study", json={"study_instance_uid": study.study_uid})
    assert conflict.status_code == 409

    assert await eventually(listed, lambda items: not items) == []
    state = await radflow.wait_acquired(order.accession, 5)
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
    assert state.study.study_instance_uid == study.study_uid and state.study.instance_count == 5
    assert any(e.kind == "STUDY_LINKED" for e in state.timeline)
    assert orthanc.study_instance_count(study.study_uid) == 5
    resolved = await radflow.api.get(f"/exceptions/study/{study.study_uid}")
    assert resolved.json()["linked_accession"] == order.accession


# ---------------------------------------------------------------------------------- acceptance 5
class GatewayProcess:
    """tests/storage_gateway_proc.py in a child process, configured through RADFLOW_* variables."""

    def __init__(self, settings: Settings, temporal: DevServer, log: Path) -> None:
        s = settings
        self.env = {**os.environ, "RADFLOW_TEMPORAL_ADDRESS": temporal.address, "RADFLOW_TASK_QUEUE": s.task_queue,
                    "RADFLOW_DATA_DIR": str(s.data_dir), "RADFLOW_DICOM_HOST": s.dicom_host,
                    "RADFLOW_DICOM_PORT": str(s.dicom_port), "RADFLOW_DICOM_AE_TITLE": s.dicom_ae_title,
                    "RADFLOW_DICOM_STABLE_AGE_S": str(s.dicom_stable_age_s), "RADFLOW_LOG_LEVEL": "WARNING",
                    "RADFLOW_TEMPORAL_RPC_TIMEOUT_S": "5", "PYTHONPATH": str(Path.cwd()),
                    # archive_study runs in the gateway (its own task queue): the archive is its setting
                    "RADFLOW_DICOM_ARCHIVE_HOST": s.dicom_archive_host,
                    "RADFLOW_DICOM_ARCHIVE_PORT": str(s.dicom_archive_port),
                    "RADFLOW_DICOM_ARCHIVE_AE_TITLE": s.dicom_archive_ae_title,
                    "RADFLOW_DICOM_ARCHIVE_TIMEOUT_S": str(s.dicom_archive_timeout_s)}
        self.log = log
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.storage_gateway_proc"], env=self.env,
                                     stdout=subprocess.PIPE, stderr=out)
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout=30)  # type: ignore[union-attr]
        assert line.startswith(b"READY"), f"gateway did not start: {line!r}, see {self.log}"

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def send_until_killed(port: int, called: str, files: list[Path], kill_after: int, kill) -> list[str]:
    """pynetdicom SCU sending one file at a time; after `kill_after` successes the gateway is
    killed mid-association. Returns the SOP Instance UIDs answered success."""
    ae = AE(ae_title="CT02")
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    ae.add_requested_context(first.SOPClassUID, first.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=called, evt_handlers=[NODELAY_HANDLER])
    assert assoc.is_established
    acked: list[str] = []
    try:
        for path in files:
            if len(acked) == kill_after:
                kill()
            ds = pydicom.dcmread(path)
            try:
                status = assoc.send_c_store(ds)
            except RuntimeError:  # the association noticed the peer is gone
                break
            if getattr(status, "Status", None) != 0x0000:
                break
            acked.append(str(ds.SOPInstanceUID))
    finally:
        if assoc.is_established:
            assoc.abort()
    return acked


async def test_kill_9_gateway_loses_and_duplicates_nothing(client: Client, dev_server: DevServer, task_queue: str,
                                                           tmp_path: Path, orthanc: Orthanc) -> None:  # noqa: F811
    settings = settings_for(tmp_path, task_queue, orthanc)
    service = order_service(client, settings)
    order = make_order(new_accession("KILL"))
    study = SyntheticStudy(order.accession, series=[("CT", 12), ("CT", 10), ("MR", 8)], size=64)
    files = study.write(tmp_path / "study")
    sop_of = {p: str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    gateway = GatewayProcess(settings, dev_server, tmp_path / "gateway.log")
    async with build_worker(client, settings):
        await service.start_order(order, EventSource.HL7, "ORM1")
        try:
            await gateway.start()
            assert_all_stored(storescu("127.0.0.1", settings.dicom_port, files[:10], called=settings.dicom_ae_title))
            acked = await asyncio.to_thread(send_until_killed, settings.dicom_port, settings.dicom_ae_title,
                                            files[10:], 6, gateway.kill9)
            assert len(acked) == 6
            acknowledged = [sop_of[p] for p in files[:10]] + acked

            spool = Spool(spool_dir(settings))
            spooled = {i.sop_instance_uid: i for i in spool.instances(study.study_uid)}
            assert set(acknowledged) <= set(spooled), "an instance answered success is not in the spool"
            for sop in acknowledged:
                assert pydicom.dcmread(BytesIO(spool.read(sop))).SOPInstanceUID == sop  # complete, parseable
            spool.close()

            await gateway.start()
            rest = [p for p in files if sop_of[p] not in set(acknowledged)]
            # The modality resends what it got no answer for, plus one it did (a retry storm).
            assert_all_stored(storescu("127.0.0.1", settings.dicom_port, rest + files[:1], called=settings.dicom_ae_title))

            state = await wait_acquired(service, order.accession, 30)
        finally:
            gateway.stop()
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
    assert state.study.instance_count == 30 and state.study.series_count == 3
    assert orthanc.study_instance_count(study.study_uid) == 30
    receptions = orthanc.receptions()
    assert {sop: receptions[sop] for sop in sop_of.values()} == {sop: 1 for sop in sop_of.values()}
