"""Issue 9, safety bound: a lane waiting for an operator never holds back the worklist.

The FHIR server is down (nothing listens on its port): the order's FHIR sync spends its
retries and waits for an operator. A cancel (HL7 ORM CA over MLLP) or an MPPS
DISCONTINUED must still take the exam off the Modality Worklist within 1 s, checked with
DCMTK `findscu -W` against radflow's real DICOM gateway; an MPPS IN PROGRESS must show as
STARTED on it just as fast. Real Temporal dev server, real worker and activities.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pydicom.uid import generate_uid
from temporalio.client import Client

from radflow.domain.definitions import OrderStatus
from radflow.devstack import free_port
from tests.gateways.dicom.dcmtk import findscu, require_dcmtk
from tests.gateways.dicom.gateway_stack import DicomStack, dicom_settings, dicom_stack, orm
from tests.gateways.dicom.mpps_scu import MppsScu, discontinued, in_progress
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SPS = "ScheduledProcedureStepSequence[0]"
BOUND_S = 1.0


def uniq(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8].upper()


@pytest.fixture(scope="module")
async def stack(client: Client, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DicomStack]:
    require_dcmtk()
    settings = dicom_settings(
        f"tq-safety-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("safety"),
        sync_consumers=["worklist", "fhir"],
        fhir_base_url=f"http://127.0.0.1:{free_port()}/fhir/R4",  # FHIR down: connection refused
        fhir_timeout_s=0.5,
        mwl_show_started=True,  # so the C-FIND also shows what MPPS IN PROGRESS did
    )
    async with dicom_stack(client, settings) as s:
        yield s


async def scheduled_order_with_fhir_waiting(stack: DicomStack) -> tuple[str, str]:
    """ORM NW over MLLP; returns (accession, station) once the exam is on the worklist and the FHIR lane waits."""
    acc, station = uniq("S"), uniq("CT")[:16]
    ack = await stack.send_hl7(orm(uniq("C"), accession=acc, mrn=uniq("M"), family="Testperson", given="Alex",
                                   station=station, start="20300115093000"))
    assert "MSA|AA" in ack, ack
    state = await eventually(lambda: stack.service.get_state(acc), lambda s: s.attention is not None, timeout_s=30)
    assert state.attention is not None and state.attention.step.startswith("fhir:"), state.attention
    assert "ConnectError" in state.attention.reason or "DeliveryFailed" in state.attention.reason
    assert await on_worklist(stack, station) == ["SCHEDULED"]
    return acc, station


async def on_worklist(stack: DicomStack, station: str) -> list[str]:
    """SPS statuses a modality sees for its station, by a real C-FIND (DCMTK findscu -W)."""
    found = await findscu(stack.port, [f"{SPS}.ScheduledStationAETitle={station}", "AccessionNumber",
                                       f"{SPS}.ScheduledProcedureStepStatus"])
    assert found.returncode == 0, found.output
    return [str(r.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus) for r in found.responses]


async def seconds_until(stack: DicomStack, station: str, wanted: list[str], since: float) -> float:
    """Poll with real C-FINDs until the modality sees `wanted`; seconds since `since`."""
    while True:
        if await on_worklist(stack, station) == wanted:
            return time.monotonic() - since
        if time.monotonic() - since > 10:
            raise AssertionError(f"worklist of {station} never became {wanted}")
        await asyncio.sleep(0.01)


async def test_cancel_leaves_the_worklist_while_fhir_waits_for_an_operator(stack: DicomStack) -> None:
    acc, station = await scheduled_order_with_fhir_waiting(stack)
    ack = await stack.send_hl7(orm(uniq("C"), accession=acc, mrn="IGNORED", family="Testperson", given="Alex",
                                   station=station, start="20300115093000", order_control="CA"))
    acked = time.monotonic()
    assert "MSA|AA" in ack, ack
    elapsed = await seconds_until(stack, station, [], acked)
    print(f"cancel AA -> off the worklist (C-FIND): {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND_S, f"cancelled exam stayed on the worklist {elapsed:.2f} s"
    state = await stack.service.get_state(acc)
    assert state.status == OrderStatus.CANCELLED and state.attention is not None  # FHIR still waits, on its own


async def test_mpps_changes_reach_the_worklist_while_fhir_waits(stack: DicomStack) -> None:
    acc, station = await scheduled_order_with_fhir_waiting(stack)
    uid = generate_uid()
    answer = await asyncio.to_thread(MppsScu(stack.port).create, in_progress(accession=acc), uid)
    assert answer.status == 0, answer
    elapsed = await seconds_until(stack, station, ["STARTED"], time.monotonic())
    print(f"MPPS IN PROGRESS -> STARTED on the worklist: {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND_S
    answer = await asyncio.to_thread(MppsScu(stack.port).set, discontinued("Patient refused to continue procedure", "110515"), uid)
    assert answer.status == 0, answer
    elapsed = await seconds_until(stack, station, [], time.monotonic())
    print(f"MPPS DISCONTINUED -> off the worklist: {elapsed * 1000:.0f} ms")
    assert elapsed < BOUND_S, f"discontinued exam stayed on the worklist {elapsed:.2f} s"
    assert (await stack.service.get_state(acc)).status == OrderStatus.DISCONTINUED
