"""archive_study: count verdict (unit) and forwarding + C-FIND confirmation against a real Orthanc."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from radflow.activities.archive import ArchiveActivities, count_verdict
from radflow.domain.definitions import ErrorType, OrderStatus
from radflow.domain.order import OrderState, StepRequest, StudyInfo
from radflow.gateways.dicom.spool import InstanceHeader, Spool
from radflow.devstack import free_port
from radflow.infra.settings import Settings
from tests.dicom_peers import Orthanc, orthanc  # noqa: F401  (module-scoped fixture)
from tests.dicom_synth import SyntheticStudy
from tests.factories import make_order


def test_count_verdict_confirms_only_an_equal_count() -> None:
    ok = count_verdict(12, 12)
    assert ok.outcome == "delivered" and ok.detail == "archive confirmed 12 instances"
    for archived in (11, 13, 0):
        with pytest.raises(ApplicationError) as err:
            count_verdict(archived, 12, "1 C-STORE failures, e.g. status 0xA700")
        assert err.value.type == ErrorType.ARCHIVE_COUNT_MISMATCH and not err.value.non_retryable
        assert err.value.message == f"archive has {archived} of 12 instances (1 C-STORE failures, e.g. status 0xA700)"


def request(study_uid: str, accession: str = "ACC1") -> StepRequest:
    now = datetime.now(UTC)
    state = OrderState(order=make_order(accession), status=OrderStatus.IN_PROGRESS, created_at=now, updated_at=now,
                       study=StudyInfo(study_instance_uid=study_uid, instance_count=1, stable=True))
    return StepRequest(consumer="archive", milestone="acquisition", accession=accession, state=state)


def spool_study(spool: Spool, study: SyntheticStudy, tmp: Path) -> list[str]:
    """Put a synthetic study in the spool the way the Storage SCP does (bytes as received)."""
    sops = []
    for path in study.write(tmp / study.study_uid):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        spool.store(InstanceHeader(sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                                   transfer_syntax=ds.file_meta.TransferSyntaxUID, study_uid=ds.StudyInstanceUID,
                                   series_uid=ds.SeriesInstanceUID, accession=ds.AccessionNumber, modality=ds.Modality),
                    path.read_bytes())
        sops.append(str(ds.SOPInstanceUID))
    return sops


def settings_for(tmp_path: Path, archive: Orthanc | None) -> Settings:
    return Settings(data_dir=tmp_path, dicom_spool_fsync=False, dicom_archive_timeout_s=5.0,
                    dicom_archive_host="127.0.0.1" if archive else "",
                    dicom_archive_port=archive.dicom_port if archive else 104,
                    dicom_archive_ae_title=archive.aet if archive else "ARCHIVE",
                    dicom_ae_title=archive.known_aet if archive else "RADFLOW")


async def test_without_archive_the_spool_is_the_store(tmp_path: Path) -> None:
    acts = ArchiveActivities(settings_for(tmp_path, None))
    result = await ActivityEnvironment().run(acts.archive_study, request("1.2.3"))
    assert (result.outcome, result.detail) == ("not_configured", "spool is the store")


@pytest.mark.integration
async def test_forwards_once_and_confirms_by_c_find(tmp_path: Path, orthanc: Orthanc) -> None:  # noqa: F811
    settings = settings_for(tmp_path, orthanc)
    acts = ArchiveActivities(settings)
    study = SyntheticStudy("ACC1", series=[("CT", 4), ("MR", 3), ("OT", 1)], size=32)
    sops = spool_study(acts.spool(), study, tmp_path / "src")
    env = ActivityEnvironment()

    result = await env.run(acts.archive_study, request(study.study_uid))
    assert (result.outcome, result.detail) == ("delivered", "archive confirmed 8 instances")
    assert orthanc.study_instance_count(study.study_uid) == 8
    assert acts.spool().instances(study.study_uid, unforwarded_only=True) == []

    again = await env.run(acts.archive_study, request(study.study_uid))  # a retry: nothing is sent twice
    assert again.outcome == "delivered"
    receptions = orthanc.receptions()
    assert {sop: receptions[sop] for sop in sops} == {sop: 1 for sop in sops}


@pytest.mark.integration
async def test_count_mismatch_names_the_numbers_and_a_later_attempt_completes(tmp_path: Path, orthanc: Orthanc) -> None:  # noqa: F811
    acts = ArchiveActivities(settings_for(tmp_path, orthanc))
    study = SyntheticStudy("ACC2", series=[("CT", 3), ("CT", 2)], size=32)
    spool_study(acts.spool(), study, tmp_path / "src")
    rejected_series = acts.spool().study_info(study.study_uid).series[1]
    orthanc.reject_series(rejected_series.series_instance_uid)
    try:
        with pytest.raises(ApplicationError) as err:
            await ActivityEnvironment().run(acts.archive_study, request(study.study_uid))
        assert err.value.type == ErrorType.ARCHIVE_COUNT_MISMATCH and not err.value.non_retryable
        # Orthanc answers success for instances its filter drops: only the count tells.
        assert err.value.message == "archive has 3 of 5 instances (2 acknowledged but missing, to be sent again)"
        assert len(acts.spool().instances(study.study_uid, unforwarded_only=True)) == 2
    finally:
        orthanc.reject_series(None)
    result = await ActivityEnvironment().run(acts.archive_study, request(study.study_uid))
    assert result.detail == "archive confirmed 5 instances"
    assert orthanc.study_instance_count(study.study_uid) == 5
    receptions = orthanc.receptions()
    dropped = {i.sop_instance_uid for i in acts.spool().instances(study.study_uid) if i.series_uid == rejected_series.series_instance_uid}
    assert {sop: n for sop, n in receptions.items() if sop in dropped} == {sop: 2 for sop in dropped}
    assert sum(receptions[i.sop_instance_uid] for i in acts.spool().instances(study.study_uid)) == 7


async def test_unreachable_archive_and_missing_spool_are_retryable(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, None).model_copy(update={"dicom_archive_host": "127.0.0.1",
                                                               "dicom_archive_port": free_port()})
    acts = ArchiveActivities(settings)
    with pytest.raises(ApplicationError) as missing:
        await ActivityEnvironment().run(acts.archive_study, request("1.2.3.404"))
    assert missing.value.type == ErrorType.SPOOL_MISSING and not missing.value.non_retryable

    study = SyntheticStudy("ACC3", series=[("CT", 1)], size=16)
    spool_study(acts.spool(), study, tmp_path / "src")
    with pytest.raises(ApplicationError) as down:
        await ActivityEnvironment().run(acts.archive_study, request(study.study_uid))
    assert down.value.type == ErrorType.ARCHIVE_UNREACHABLE and not down.value.non_retryable
    assert len(acts.spool().instances(study.study_uid, unforwarded_only=True)) == 1
