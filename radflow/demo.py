"""`radflow demo`: the dev stack with demo destinations, and one order driven through every protocol.

The destinations start first: an EHR MLLP sink in this process, the Medplum-based FHIR
server when Node.js is installed, Orthanc as the archive when it is installed (each one
missing is said, and its consumer left out). Then `radflow dev`'s stack, pointed at them;
then the drive (radflow/demo_drive.py) prints each step with the order's Temporal UI link.
Everything then keeps running for exploring until Ctrl-C; `--once` stops after the drive
(exit 0 when the order ended DELIVERED, 1 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from radflow.infra.console import print_line
from radflow.components import Component
from radflow.demo_drive import DemoDrive, Destinations
from radflow.demo_sinks import EhrSink, FhirComponent, OrthancComponent, node_installed, orthanc_installed
from radflow.dev import run_dev
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings

DEMO_STABLE_AGE_S = 2.0  # a real modality pauses longer; the demo's 5 images arrive at once


def demo_settings(settings: Settings, dest: Destinations) -> Settings:
    """The dev settings, with every consumer pointed at a demo destination (or left out when absent)."""
    update: dict[str, object] = {
        "ehr_mllp_host": dest.ehr.host,
        "ehr_mllp_port": dest.ehr.port,
        "dicom_stable_age_s": DEMO_STABLE_AGE_S,
        "step_initial_interval_s": 0.5,
        "step_max_interval_s": 5.0,
    }
    if dest.fhir is not None:
        update["fhir_base_url"] = dest.fhir.base_url
    else:
        update["sync_consumers"] = [c for c in settings.sync_consumers if c != "fhir"]
        update["report_consumers"] = [c for c in settings.report_consumers if c != "fhir"]
    if dest.orthanc is not None:
        update.update(dicom_archive_host=dest.orthanc.host, dicom_archive_port=dest.orthanc.dicom_port,
                      dicom_archive_ae_title=dest.orthanc.aet)
        if dest.orthanc.dicomweb:
            update["dicomweb_base_url"] = dest.orthanc.dicomweb
    return settings.model_copy(update=update)


def missing_notice(dest: Destinations) -> list[str]:
    notes = []
    if dest.fhir is None:
        notes.append("NOTICE: Node.js/npm not installed: no FHIR server, reports go to the EHR sink only "
                     "(apt-get install nodejs npm).")
    if dest.orthanc is None:
        notes.append("NOTICE: Orthanc not installed: images stay in radflow's spool (apt-get install orthanc).")
    return notes


class DriveComponent:
    """Runs the drive once the stack is up; with `once`, stops the process after it (Ctrl-C path)."""

    name = "demo-drive"

    def __init__(self, drive: DemoDrive, once: bool, notices: list[str]) -> None:
        self.drive = drive
        self.once = once
        self.notices = notices
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        # Not awaited here: the runner prints the stack's banner first, then the drive begins.
        self.task = asyncio.create_task(self._run(), name="demo-drive")

    async def _run(self) -> None:
        for note in self.notices:
            print_line(note)
        try:
            state = await self.drive.run()
        except Exception as err:
            # Say it in the drive's own words before the runner logs the component's exit.
            print_line(f"radflow demo: FAILED after step {self.drive.step}: {err}")
            raise
        print_line(f"radflow demo: order {state.order.accession} ended {state.status}.")
        if self.once:
            # The runner's own clean stop (as Ctrl-C); it cancels this task meanwhile: ending
            # here instead would read as the component dying.
            signal.raise_signal(signal.SIGINT)
        else:
            print_line("Everything keeps running: explore the order in the Temporal UI, the API docs and the destinations "
                  "listed above; send more with `radflow send-hl7`. Press Ctrl-C to stop.")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def endpoints(self) -> list[tuple[str, str]]:
        return [("Demo order", self.drive.order.accession)]

    def failed(self) -> asyncio.Task | None:
        return self.task


async def run_demo(settings: Settings, data_dir: Path, *, once: bool = False, headless: bool = False) -> int:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    host = settings.dev_host
    dest = Destinations(
        ehr=EhrSink(host),
        fhir=FhirComponent(data_dir, host) if node_installed() else None,
        orthanc=OrthancComponent(data_dir / "orthanc", host, settings.dicom_ae_title, settings.dicom_port)
        if orthanc_installed() else None,
    )
    settings = demo_settings(settings, dest)
    ui_base = None if headless else f"http://{host}:{settings.dev_ui_port}/namespaces/default"  # the dev server's

    def drive(stack_settings: Settings, service: OrderService) -> list[Component]:
        return [DriveComponent(DemoDrive(stack_settings, service, dest, ui_base), once, missing_notice(dest))]

    before: list[Component] = [c for c in (dest.ehr, dest.fhir, dest.orthanc) if c is not None]
    return await run_dev(settings, data_dir, headless, before=before, after=drive, title="radflow demo is running")
