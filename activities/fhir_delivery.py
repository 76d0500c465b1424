"""`sync_fhir` and `deliver_report_fhir`: mirror an order onto a FHIR R4 server.

Each call carries the whole order snapshot and upserts by business identifier, so a
retried or repeated call converges on the same resources (new versions only when the
content changed). Resources are written parent first - Patient, Encounter,
ServiceRequest, Task / Endpoint, ImagingStudy, DiagnosticReport - each linked to the
server ids its parents got (`refs`).

Patient and Encounter belong to the EHR's ADT domain: they are created when missing and
updated only on order/patient milestones (new or changed order, ADT update/merge), so a
status change never rewrites what another system may have added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio import activity

from radflow.activities.fhir_client import FhirClient, Upserted
from radflow.domain import definitions as d
from radflow.domain.fhir import (
    FhirMappingConfig,
    business_identifier,
    diagnostic_report,
    encounter,
    endpoint,
    imaging_studies,
    patient,
    service_request,
    task,
)
from radflow.activities.documents import read_documents
from radflow.domain.fhir.keys import study_key, study_ref_name
from radflow.domain.fhir.patient import replaced_by, retired_patient_key
from radflow.domain.order import EventKind, OrderState, StepRequest, StepResult
from radflow.infra.attachments import AttachmentStore, attachment_store
from radflow.infra.settings import Settings

# Milestones after which Patient and Encounter are rewritten from the order.
ORDER_MILESTONES = d.OWNER_MILESTONES  # shared with the workflow (a report delivery covers other syncs)
NOT_CONFIGURED = StepResult(outcome="not_configured", detail="no FHIR server (RADFLOW_FHIR_BASE_URL is empty)")


@dataclass
class _Run:
    """One delivery: the refs resolved so far and what each write did."""

    refs: dict[str, str] = field(default_factory=dict)
    done: list[Upserted] = field(default_factory=list)

    def detail(self, lead: str = "") -> str:
        # The resource the step is about comes first (timeline lines get cut when long).
        done = sorted(self.done, key=lambda u: u.resource_type != lead)
        changed = [u.describe() for u in done if u.action != "unchanged"]
        same = [u.resource_type for u in done if u.action == "unchanged"]
        parts = changed + ([f"unchanged: {', '.join(same)}"] if same else [])
        return "; ".join(parts) if parts else "nothing to write"


class FhirDelivery:
    def __init__(self, client_factory: Callable[[], FhirClient] | None, mapping: FhirMappingConfig,
                 attachments: AttachmentStore | None = None) -> None:
        self._client_factory = client_factory
        self.attachments = attachments
        self._client: FhirClient | None = None
        self.mapping = mapping

    @classmethod
    def from_settings(cls, settings: Settings) -> FhirDelivery:
        if not settings.fhir_base_url:
            return cls(None, settings.fhir_mapping())
        base, token, timeout = settings.fhir_base_url, settings.fhir_token or None, settings.fhir_timeout_s
        return cls(lambda: FhirClient(base, token=token, timeout=timeout), settings.fhir_mapping(), attachment_store(settings))

    def client(self) -> FhirClient:
        # Built on first use, inside the worker's event loop; kept for connection reuse.
        if self._client is None:
            assert self._client_factory is not None
            self._client = self._client_factory()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ activities
    @activity.defn(name=d.SYNC_ACTIVITIES["fhir"])
    async def sync_fhir(self, req: StepRequest) -> StepResult:
        if self._client_factory is None:
            return NOT_CONFIGURED
        state = req.state
        run = _Run()
        # v2 lanes coalesce several changes into one sync: any order milestone among them counts.
        await self._order_resources(run, state, owner_update=bool(ORDER_MILESTONES.intersection(req.milestones or [req.milestone])))
        if state.acquired_at is not None or req.milestone == EventKind.ACQUISITION_CONFIRMED.value:
            await self._study_resources(run, state)
        return StepResult(outcome="delivered", detail=run.detail())

    @activity.defn(name=d.REPORT_DELIVERY_ACTIVITIES["fhir"])
    async def deliver_report_fhir(self, req: StepRequest) -> StepResult:
        if self._client_factory is None:
            return NOT_CONFIGURED
        state = req.state
        if state.report is None:
            return StepResult(outcome="skipped", detail="no report in the order")
        documents = await read_documents(self.attachments, req)
        run = _Run()
        # The ServiceRequest goes to completed with a final report (the mapping decides).
        await self._order_resources(run, state, owner_update=False)
        await self._study_resources(run, state)
        await self._write(run, diagnostic_report(state, self.mapping, run.refs, documents))
        return StepResult(outcome="delivered", detail=f"{state.report.status.value} report: {run.detail('DiagnosticReport')}")

    # ------------------------------------------------------------------ steps
    async def _order_resources(self, run: _Run, state: OrderState, *, owner_update: bool) -> None:
        await self._write(run, patient(state, self.mapping, run.refs), update=owner_update)
        if owner_update:
            await self._retire_merged_patients(run, state)
        await self._write(run, encounter(state, self.mapping, run.refs), update=owner_update)
        await self._write(run, service_request(state, self.mapping, run.refs))
        await self._write(run, task(state, self.mapping, run.refs))

    async def _retire_merged_patients(self, run: _Run, state: OrderState) -> None:
        """ADT A40: each MRN merged away stays on the server as an inactive Patient that
        points `replaced-by` to the survivor (readers holding the old reference find it)."""
        survivor = run.refs.get("Patient")
        current = state.order.patient
        for old in state.previous_patients:
            if survivor is None or (old.mrn, old.issuer) == (current.mrn, current.issuer):
                continue
            key = retired_patient_key(old, self.mapping)
            done = await self.client().amend("Patient", (key["system"], key["value"]),
                                             lambda stored, key=key: replaced_by(stored, key, survivor))
            run.done.append(done)

    async def _study_resources(self, run: _Run, state: OrderState) -> None:
        if study_key(state) is None:
            return  # no Study Instance UID known yet: nothing identifies the study
        await self._write(run, endpoint(self.mapping, run.refs))
        # One ImagingStudy per study of the order; the report links each by its own ref.
        for uid, resource in imaging_studies(state, self.mapping, run.refs):
            await self._write(run, resource, ref_name=study_ref_name(uid))

    async def _write(self, run: _Run, resource: dict | None, *, update: bool = True, ref_name: str = "") -> None:
        if resource is None:
            return
        key = business_identifier(resource)
        done = await self.client().put_resource(resource, key, update=update)
        run.refs[done.resource_type] = done.reference
        if ref_name:
            run.refs[ref_name] = done.reference
        run.done.append(done)
        activity.logger.debug("FHIR %s", done.describe())
