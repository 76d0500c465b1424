"""One order through every protocol, printed step by step (`radflow demo`).

What a hospital's systems would do, over the same sockets they would use: the EHR registers
the patient and orders a CT (HL7 ADT + ORM over MLLP), the scanner reads its worklist (MWL
C-FIND), starts the procedure (MPPS IN PROGRESS), sends images (C-STORE) and completes
(MPPS COMPLETED); the radiologist's reporting system sends a preliminary then a final report
(ORU P, F). radflow's part shows in the order's state after each step.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from radflow.infra.console import print_line
from radflow.domain.definitions import OrderStatus, order_workflow_id
from radflow.domain.order import OrderState
from radflow.demo_messages import DemoOrder, adt_a04, orm_nw, oru
from radflow.demo_modality import Modality, WorklistItem
from radflow.demo_sinks import EhrSink, FhirComponent, OrthancComponent
from radflow.dicom_synth import SyntheticStudy
from radflow.infra.mllp_client import MllpClient
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings

STEPS = 9


class DemoFailed(Exception):
    """A step did not get the answer it must get (the message says which and what came instead)."""


@dataclass
class Destinations:
    ehr: EhrSink
    fhir: FhirComponent | None = None
    orthanc: OrthancComponent | None = None


@dataclass
class DemoDrive:
    settings: Settings
    service: OrderService
    destinations: Destinations
    ui_base: str | None  # the Temporal UI's namespace URL; None when headless
    order: DemoOrder = field(default_factory=lambda: _new_order())
    step: int = 0

    # ---------------------------------------------------------------- output
    def say(self, text: str) -> None:
        self.step += 1
        print_line(f"[{self.step}/{STEPS}] {text}")

    def detail(self, text: str) -> None:
        print_line(f"      {text}")

    def order_link(self) -> str:
        wid = order_workflow_id(self.order.accession)
        if self.ui_base:
            return f"{self.ui_base}/workflows/{wid}"
        return f"workflow {wid} (Temporal UI off: --headless)"

    # ---------------------------------------------------------------- the story
    async def run(self) -> OrderState:
        o = self.order
        host = self.settings.dev_host
        print_line(f"radflow demo: one order, accession {o.accession}, through every protocol")
        print_line(f"      follow it in the Temporal UI: {self.order_link()}")
        async with MllpClient(host, self.settings.mllp_port, timeout_s=30) as mllp:
            await self._hl7(mllp, "HL7 ADT^A04 over MLLP (the EHR registers the patient)", adt_a04(o, f"A04-{o.accession}"))
            await self._hl7(mllp, "HL7 ORM^O01 NW over MLLP (the EHR orders a CT head)", orm_nw(o, f"NW-{o.accession}"))
            state = await self._state()
            self.detail(f"order {state.status}; API http://{host}:{self.settings.api_port}/orders/{o.accession}")

            modality = Modality(host, self.settings.dicom_port, self.settings.dicom_ae_title, aet=o.station)
            item = await self._worklist(modality)
            uid = await asyncio.to_thread(modality.mpps_in_progress, item)
            self.say(f"DICOM MPPS N-CREATE IN PROGRESS from {o.station}: success")
            state = await self._until(lambda s: s.status == OrderStatus.IN_PROGRESS, "IN_PROGRESS", 30)
            self.detail(f"order {state.status}")

            study = SyntheticStudy(accession=o.accession, study_uid=item.study_uid, patient_id=item.patient_id,
                                   patient_issuer="DEMOHOSP", patient_name=f"{o.family}^{o.given}",
                                   series=[("CT", 3), ("CT", 2)], size=64)
            images = list(study.datasets())
            stored = await asyncio.to_thread(modality.store, images)
            self.say(f"DICOM C-STORE of {len(images)} synthetic CT images in 2 series: {stored} of {len(images)} success")

            await asyncio.to_thread(modality.mpps_completed, uid, images)
            self.say(f"DICOM MPPS N-SET COMPLETED referencing {len(images)} images: success")
            archive = "archived in Orthanc and confirmed by C-FIND" if self.destinations.orthanc else "kept in radflow's spool"
            self.detail(f"waiting for the study to be complete (quiet for {self.settings.dicom_stable_age_s:g} s) and {archive} ...")
            state = await self._until(lambda s: s.status == OrderStatus.ACQUIRED, "ACQUIRED", 120)
            self.detail(f"order {state.status}: {state.study.instance_count} instances, study {state.study.study_instance_uid}")
            if self.destinations.orthanc is not None:
                held = await self.destinations.orthanc.study_instances(item.study_uid)
                self.detail(f"Orthanc holds {held} instances of the study ({self.destinations.orthanc.url}/app/explorer.html)")

            await self._hl7(mllp, "HL7 ORU^R01 preliminary report (OBR-25 P) over MLLP",
                            oru(o, "P", f"ORU-P-{o.accession}", "Preliminary: no acute intracranial finding."))
            state = await self._until(lambda s: s.report is not None, "a preliminary report", 60)
            self.detail(f"order {state.status}, report {state.report.status if state.report else '-'}")
            await self._hl7(mllp, "HL7 ORU^R01 final report (OBR-25 F) over MLLP",
                            oru(o, "F", f"ORU-F-{o.accession}", "Final: no acute intracranial abnormality."))
        state = await self._until(lambda s: s.status == OrderStatus.DELIVERED, "DELIVERED", 120)
        self.say(f"order {state.status}: every report destination acknowledged the final report")
        await self._destinations_summary(state)
        return state

    # ---------------------------------------------------------------- steps
    async def _hl7(self, mllp: MllpClient, what: str, message: bytes) -> None:
        ack = (await mllp.send(message)).decode("utf-8", "replace")
        code = next((line.split("|")[1] for line in ack.split("\r") if line.startswith("MSA|")), "?")
        self.say(f"{what}: {code}")
        if code != "AA":
            raise DemoFailed(f"expected AA, got {ack!r}")

    async def _worklist(self, modality: Modality) -> WorklistItem:
        # The worklist read model is written by the order's sync step, just after the AA.
        deadline = time.monotonic() + 30
        while True:
            items = await asyncio.to_thread(modality.worklist, self.order.accession)
            if items:
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"order {self.order.accession} not on the worklist after 30 s")
            await asyncio.sleep(0.3)
        item = items[0]
        self.say(f"DICOM MWL C-FIND by accession from {modality.aet}: {len(items)} worklist item "
                 f"(station {item.station}, {item.modality}, step {item.sps_id}, study {item.study_uid})")
        return item

    async def _state(self) -> OrderState:
        return await self.service.get_state(self.order.accession)

    async def _until(self, ok: Callable[[OrderState], bool], what: str, timeout_s: float) -> OrderState:
        deadline = time.monotonic() + timeout_s
        while True:
            state = await self._state()
            if ok(state):
                return state
            if time.monotonic() > deadline:
                lanes = {name: lane.last + (" (needs attention)" if lane.attention else "") for name, lane in state.lanes.items()}
                raise DemoFailed(f"order {self.order.accession} not {what} after {timeout_s:g} s: "
                                 f"status {state.status}, lanes {lanes}, deliveries {state.deliveries}")
            await asyncio.sleep(0.3)

    async def _destinations_summary(self, state: OrderState) -> None:
        ehr = [r.result_status for r in self.destinations.ehr.received
               if r.kind.startswith("ORU") and r.accession == self.order.accession]
        self.detail(f"EHR sink received ORU^R01 {' then '.join(ehr) or 'nothing'}; deliveries {state.deliveries}")
        if self.destinations.fhir is not None:
            reports = await _fhir_reports(self.destinations.fhir.base_url,
                                          f"{self.settings.fhir_identifier_base}/accession", self.order.accession)
            self.detail(f"FHIR server: DiagnosticReport {', '.join(reports) or 'none'} "
                        f"({self.destinations.fhir.base_url}/DiagnosticReport)")


async def _fhir_reports(base_url: str, system: str, accession: str) -> list[str]:
    """Statuses of the FHIR server's DiagnosticReports for this accession (by identifier)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        found = await http.get(f"{base_url}/DiagnosticReport", params={"identifier": f"{system}|{accession}"})
        found.raise_for_status()
    return [e["resource"].get("status", "?") for e in found.json().get("entry", [])]


def _new_order() -> DemoOrder:
    tag = uuid.uuid4().hex[:6].upper()
    return DemoOrder(accession=f"DEMO{tag}", mrn=f"DEMO-MRN-{tag}")


