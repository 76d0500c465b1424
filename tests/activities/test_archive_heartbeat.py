"""archive_study heartbeats its progress, and only its progress (issue 9, lanes).

With a heartbeat timeout (how v2 lanes call it) an attempt is not cut at a time budget: it
runs while instances go out and heartbeats the count; a stall sends no heartbeat, so the
server's heartbeat timeout fails that attempt and the retry policy starts the next one.
The archive client here is a stand-in with controllable pace; the spool is the real one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from radflow.activities.archive import ArchiveActivities
from radflow.gateways.dicom.archive_client import ForwardReport
from tests.activities.test_archive import request, settings_for, spool_study
from tests.dicom_synth import SyntheticStudy


class PacedArchive:
    """Acknowledges each instance after `pause` seconds; `stall_after` stops acknowledging until released."""

    def __init__(self, pause: float, stall_after: int | None = None) -> None:
        self.pause = pause
        self.stall_after = stall_after
        self.release = threading.Event()
        self.held: set[str] = set()

    def forward(self, instances, read, on_stored, deadline=None) -> ForwardReport:
        report = ForwardReport()
        for n, inst in enumerate(instances):
            if deadline is not None and time.monotonic() > deadline:  # as ArchiveClient does
                report.stopped_early = True
                return report
            if self.stall_after is not None and n == self.stall_after:
                self.release.wait(10)
            time.sleep(self.pause)
            read(inst.sop_instance_uid)
            on_stored(inst.sop_instance_uid)
            self.held.add(inst.sop_instance_uid)
            report.stored += 1
        return report

    def count_instances(self, study_uid: str) -> int:
        return len(self.held)

    def list_instances(self, study_uid: str) -> set[str]:
        return set(self.held)


def env_with_heartbeat(timeout_s: float | None) -> tuple[ActivityEnvironment, list[int]]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=timeout_s) if timeout_s else None,
                                   start_to_close_timeout=timedelta(seconds=1))
    beats: list[int] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    return env, beats


async def test_heartbeats_the_forwarded_count_and_is_not_cut_by_a_time_budget(tmp_path: Path) -> None:
    archive = PacedArchive(pause=0.06)
    acts = ArchiveActivities(settings_for(tmp_path, None).model_copy(update={"dicom_archive_host": "127.0.0.1"}),
                             client=archive)  # type: ignore[arg-type]
    study = SyntheticStudy("ACC1", series=[("CT", 30)], size=16)
    spool_study(acts.spool(), study, tmp_path / "src")
    env, beats = env_with_heartbeat(0.2)
    started = time.monotonic()
    result = await env.run(acts.archive_study, request(study.study_uid))
    # 30 x 60 ms > the 1 s start-to-close budget that would have stopped a v1 attempt at 0.7 s.
    assert time.monotonic() - started > 1.5
    assert (result.outcome, result.detail) == ("delivered", "archive confirmed 30 instances")
    assert beats[0] == 0 and beats == sorted(beats) and len(set(beats)) == len(beats)
    assert len(beats) >= 10 and beats[-1] >= 25


async def test_a_stall_sends_no_heartbeat(tmp_path: Path) -> None:
    archive = PacedArchive(pause=0.01, stall_after=5)
    acts = ArchiveActivities(settings_for(tmp_path, None).model_copy(update={"dicom_archive_host": "127.0.0.1"}),
                             client=archive)  # type: ignore[arg-type]
    study = SyntheticStudy("ACC2", series=[("CT", 8)], size=16)
    spool_study(acts.spool(), study, tmp_path / "src")
    env, beats = env_with_heartbeat(0.2)
    threading.Timer(1.5, archive.release.set).start()
    await env.run(acts.archive_study, request(study.study_uid))
    # Beats up to 5, then silence for the 1.5 s stall (7 heartbeat periods): the server would time it out.
    stalled = [b for b in beats if b == 5]
    assert 5 in beats and len(stalled) == 1, beats


async def test_without_heartbeat_timeout_the_v1_time_budget_still_applies(tmp_path: Path) -> None:
    archive = PacedArchive(pause=0.06)
    acts = ArchiveActivities(settings_for(tmp_path, None).model_copy(update={"dicom_archive_host": "127.0.0.1"}),
                             client=archive)  # type: ignore[arg-type]
    study = SyntheticStudy("ACC3", series=[("CT", 30)], size=16)
    spool_study(acts.spool(), study, tmp_path / "src")
    env, beats = env_with_heartbeat(None)
    try:
        await env.run(acts.archive_study, request(study.study_uid))
    except Exception as err:  # ApplicationError ArchiveForwardIncomplete
        assert "left: continuing" in str(err)
    else:
        raise AssertionError("a v1 attempt must stop at its time budget")
    assert beats == []
