"""The activities a radflow worker registers, built from settings (clients injected here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from radflow.infra.settings import Settings


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    from radflow.activities.hl7_delivery import Hl7ReportDelivery

    hl7 = Hl7ReportDelivery.from_settings(settings)
    activities: list[Callable[..., Any]] = [hl7.deliver_report_hl7]

    from radflow.activities.worklist_sync import WorklistSync

    activities.append(WorklistSync.from_settings(settings).sync_worklist)

    if settings.worker_spool_archive:
        # Normally archive_study runs in the DICOM gateway that holds the spool (gateways/dicom/archive_worker.py).
        from radflow.activities.archive import ArchiveActivities

        activities.append(ArchiveActivities.from_settings(settings).archive_study)

    from radflow.activities.fhir_delivery import FhirDelivery

    fhir = FhirDelivery.from_settings(settings)
    activities += [fhir.sync_fhir, fhir.deliver_report_fhir]

    from radflow.activities.order_index import prune_order_index

    activities.append(prune_order_index)
    return activities
