"""Traces follow the inbound message that caused the work, not only the one that started the order.

`temporalio.contrib.opentelemetry.TracingInterceptor` (on every client, radflow/infra/telemetry.py) puts
everything a workflow does under the trace of the call that *started* it, and only links later
updates. An order lives for days: its report delivery would hang under the ORM's trace. This
worker interceptor remembers the trace context carried by the latest `event` update (an HL7/DICOM/
FHIR/API message) and starts the activities scheduled after it (delivery, sync, archive) in that
context, so an ORU's trace reads: `hl7 receive` -> `UpdateWorkflow:event` -> `StartActivity:
deliver_report_hl7` -> `RunActivity:deliver_report_hl7`. Before any event the workflow's own trace
applies.

Deterministic: the context comes from the update's header, which is in the workflow history; the
tracing interceptor creates no spans during replay.
"""

from __future__ import annotations

from typing import Any

import opentelemetry.context
import opentelemetry.propagate
from temporalio import converter, workflow
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from radflow.domain.definitions import EVENT_UPDATE

HEADER = "_tracer-data"  # the contrib interceptor's header key


class EventTraceInterceptor(Interceptor):
    """Must come after the TracingInterceptor (the client's interceptors come first on a worker)."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:  # noqa: A002
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    def __init__(self, next: WorkflowInboundInterceptor) -> None:  # noqa: A002
        super().__init__(next)
        self.carrier: dict[str, str] | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound, self))

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:  # noqa: A002
        header = input.headers.get(HEADER)
        if input.update == EVENT_UPDATE and header is not None:
            self.carrier = converter.PayloadConverter.default.from_payloads([header])[0]
        return await super().handle_update_handler(input)


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, root: _Inbound) -> None:  # noqa: A002
        super().__init__(next)
        self.root = root

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle:  # noqa: A002
        token = self._attach()
        try:
            return super().start_activity(input)
        finally:
            if token is not None:
                opentelemetry.context.detach(token)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle:  # noqa: A002
        token = self._attach()
        try:
            return super().start_local_activity(input)
        finally:
            if token is not None:
                opentelemetry.context.detach(token)

    def _attach(self) -> object | None:
        if not self.root.carrier:
            return None
        return opentelemetry.context.attach(opentelemetry.propagate.extract(self.root.carrier,
                                                                            context=opentelemetry.context.get_current()))
