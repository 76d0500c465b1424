"""Issue 7.8 with real peers: DCMTK storescu -> radflow's storage SCP -> Orthanc, the real worker on
the session's Temporal dev server, the HTTP API in process.

- same accession, same patient, a second Study Instance UID: a further study of the order (both
  archived, both in the API), the first study untouched;
- same accession, another patient: refused by the order and quarantined as an unmatched study;
- no accession: matched by the Study Instance UID the order announced (worklist / ZDS).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.dicom.uids import study_uid_for_accession
from radflow.gateways.dicom.worklist_store import WorklistStore
from tests.dicom_peers import Orthanc, orthanc, storescu  # noqa: F401  (module-scoped fixture)
from tests.dicom_synth import SyntheticStudy
from tests.factories import make_order, new_accession
from tests.gateways.dicom.test_dicom_storage_e2e import (
    Radflow,
    assert_all_stored,
    open_radflow,
    settings_for,
    timeline_text,
)
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
async def radflow(client: Client, task_queue: str, tmp_path: Path, orthanc: Orthanc) -> AsyncIterator[Radflow]:  # noqa: F811
    # The worklist consumer on: its read model is where the gateway finds announced Study UIDs.
    async with open_radflow(client, settings_for(tmp_path, task_queue, orthanc, sync_consumers=["worklist"])) as running:
        yield running


def send(radflow: Radflow, study: SyntheticStudy, directory: Path) -> None:
    assert_all_stored(storescu("127.0.0.1", radflow.port, study.write(directory), calling="CT01",
                              called=radflow.settings.dicom_ae_title))


async def acquired_with(radflow: Radflow, accession: str, instances: int):
    return await eventually(lambda: radflow.state(accession),
                            lambda s: s.status == OrderStatus.ACQUIRED
                            and s.deliveries.get("acquisition:archive") == f"n{instances}:delivered", timeout_s=60)


async def test_second_study_of_the_same_patient_is_kept_beside_the_first(radflow: Radflow, orthanc: Orthanc,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    order = make_order(new_accession("TWO"))
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    first = SyntheticStudy(order.accession, series=[("CT", 3), ("CT", 2)], size=32)
    send(radflow, first, tmp_path / "first")
    state = await acquired_with(radflow, order.accession, 5)
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)

    second = SyntheticStudy(order.accession, series=[("CT", 3)], size=32)  # same accession and PatientID, new UID
    send(radflow, second, tmp_path / "second")
    state = await acquired_with(radflow, order.accession, 8)  # the second study is archived too
    assert state.deliveries.get("acquisition:archive") == "n8:delivered", timeline_text(state)
    s = state.study
    assert (s.study_instance_uid, s.instance_count, state.order.study_instance_uid) == (first.study_uid, 5, first.study_uid)
    assert [(x.study_instance_uid, x.instance_count, x.stable) for x in state.extra_studies] == [(second.study_uid, 3, True)]
    assert orthanc.study_instance_count(first.study_uid) == 5 and orthanc.study_instance_count(second.study_uid) == 3
    assert any(f"further study {second.study_uid} stable" in line for line in timeline_text(state))

    body = (await radflow.api.get(f"/orders/{order.accession}")).json()
    assert body["study"]["study_instance_uid"] == first.study_uid and body["study"]["instance_count"] == 5
    assert [(x["study_instance_uid"], x["instance_count"]) for x in body["studies"]] == [
        (first.study_uid, 5), (second.study_uid, 3)]


@pytest.mark.parametrize(("patient_id", "issuer"), [("MRN-SOMEONE-ELSE", ""), ("MRN001", "OTHERHOSP")],
                         ids=["other-patient-id", "same-id-other-issuer"])
async def test_another_patients_study_with_the_orders_accession_is_quarantined(radflow: Radflow,  # noqa: F811
                                                                             orthanc: Orthanc, tmp_path: Path,  # noqa: F811
                                                                             patient_id: str, issuer: str) -> None:
    order = make_order(new_accession("MIX"))  # MRN001, issuer HOSP
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    own = SyntheticStudy(order.accession, patient_issuer="HOSP", series=[("CT", 2)], size=32)
    send(radflow, own, tmp_path / "own")
    assert (await acquired_with(radflow, order.accession, 2)).status == OrderStatus.ACQUIRED

    foreign = SyntheticStudy(order.accession, patient_id=patient_id, patient_issuer=issuer, series=[("CT", 4)], size=32)
    send(radflow, foreign, tmp_path / "foreign")

    async def listed():
        r = await radflow.api.get("/exceptions", params={"kind": "study"})
        return [i for i in r.json()["items"] if i["key"] == foreign.study_uid]

    items = await eventually(listed, lambda items: bool(items) and items[0]["details"].get("instance_count") == 4, timeout_s=30)
    assert items and "another patient" in items[0]["reason"] and not items[0]["resolved"], items
    assert (items[0]["details"]["patient_id"], items[0]["details"]["patient_issuer"]) == (patient_id, issuer)
    state = await radflow.state(order.accession)
    assert (state.study.study_instance_uid, state.study.instance_count) == (own.study_uid, 2)  # not replaced
    assert state.extra_studies == [] and state.status == OrderStatus.ACQUIRED
    assert any(e.exception and "another patient" in e.summary for e in state.timeline)
    assert orthanc.study_instance_count(foreign.study_uid) == 0  # kept in the spool, not archived with the order


async def test_images_without_accession_match_the_study_uid_the_worklist_announced(radflow: Radflow,  # noqa: F811
                                                                                  orthanc: Orthanc, tmp_path: Path) -> None:  # noqa: F811
    order = make_order(new_accession("UID"))  # no Study UID in the order: the worklist offers a derived one
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    announced = study_uid_for_accession(order.accession)
    worklist = WorklistStore(radflow.settings.mwl_db_path())

    async def on_worklist() -> str | None:
        return worklist.lookup_accession(study_uid=announced)

    assert await eventually(on_worklist, lambda found: found == order.accession) == order.accession
    study = SyntheticStudy("", study_uid=announced, series=[("CT", 3)], size=32)
    send(radflow, study, tmp_path / "noacc")
    state = await acquired_with(radflow, order.accession, 3)
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
    assert state.study.study_instance_uid == announced and orthanc.study_instance_count(announced) == 3


async def test_images_without_accession_match_the_zds_study_uid(radflow: Radflow, orthanc: Orthanc,  # noqa: F811
                                                               tmp_path: Path) -> None:
    order = make_order(new_accession("ZDS"))
    order.study_instance_uid = f"1.2.826.0.1.3680043.2.1125.{uuid.uuid4().int % 10**30}"  # as ZDS-1 / IPC-3 send it
    await radflow.service.start_order(order, EventSource.HL7, "ORM1")
    study = SyntheticStudy("", study_uid=order.study_instance_uid, series=[("CT", 2)], size=32)
    send(radflow, study, tmp_path / "zds")
    state = await acquired_with(radflow, order.accession, 2)
    assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
