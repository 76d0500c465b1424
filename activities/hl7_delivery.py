"""Report delivery to the EHR: ORU^R01 over MLLP, one attempt per activity execution.

AA -> delivered. AR -> non-retryable DeliveryRejected (the order goes to NEEDS_ATTENTION
at once: resending the same message cannot help). AE, refused connection, timeout or an
answer that does not match -> retryable DeliveryFailed, so the workflow's retry policy
decides how long to keep trying. No EHR configured -> "not_configured".
"""

from __future__ import annotations

import asyncio
import ssl

from temporalio import activity
from temporalio.exceptions import ApplicationError

from radflow.domain.definitions import ErrorType
from radflow.domain.hl7.ack import read_ack
from radflow.domain.hl7.oru import build_oru
from radflow.domain.order import StepRequest, StepResult
from radflow.activities.documents import read_documents
from radflow.infra.attachments import AttachmentStore, attachment_store
from radflow.infra.mllp_client import MllpClient, MllpError
from radflow.infra.settings import Settings
from radflow.infra.tls import client_context


class Hl7ReportDelivery:
    def __init__(self, host: str, port: int, *, timeout_s: float = 10.0, sending_application: str = "RADFLOW",
                 sending_facility: str = "RADFLOW", receiving_application: str = "EHR", receiving_facility: str = "",
                 attachments: AttachmentStore | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.tls = tls
        self.attachments = attachments
        self.port = port
        self.timeout_s = timeout_s
        self.sending_application = sending_application
        self.sending_facility = sending_facility
        self.receiving_application = receiving_application
        self.receiving_facility = receiving_facility

    @classmethod
    def from_settings(cls, settings: Settings) -> Hl7ReportDelivery:
        return cls(
            settings.ehr_mllp_host,
            settings.ehr_mllp_port,
            timeout_s=settings.ehr_mllp_timeout_s,
            sending_application=settings.hl7_sending_application,
            sending_facility=settings.hl7_sending_facility,
            receiving_application=getattr(settings, "ehr_receiving_application", "EHR"),
            receiving_facility=getattr(settings, "ehr_receiving_facility", ""),
            attachments=attachment_store(settings),
            tls=client_context(settings, "ehr_mllp"),
        )

    @property
    def configured(self) -> bool:
        return bool(self.host and self.port)

    @activity.defn(name="deliver_report_hl7")
    async def deliver_report_hl7(self, req: StepRequest) -> StepResult:
        if not self.configured:
            return StepResult(outcome="not_configured", detail="no EHR MLLP endpoint configured")
        report = req.state.report
        if report is None:
            return StepResult(outcome="skipped", detail="order has no report")
        documents = await read_documents(self.attachments, req)
        # Linear, but a 1 MB report is still CPU time: keep it off the worker's event loop.
        text, control_id = await asyncio.to_thread(
            build_oru,
            req.state,
            documents=documents,
            sending_application=self.sending_application,
            sending_facility=self.sending_facility,
            receiving_application=self.receiving_application,
            receiving_facility=self.receiving_facility,
        )
        client = MllpClient(self.host, self.port, timeout_s=self.timeout_s, tls=self.tls)
        try:
            raw_ack = await client.send(text.encode("utf-8"))
        except (OSError, MllpError) as err:
            raise ApplicationError(f"EHR {self.host}:{self.port} unreachable: {err}", type=ErrorType.DELIVERY_FAILED) from err
        finally:
            await client.close()
        ack = read_ack(raw_ack.decode("utf-8", errors="replace"))
        if ack is None or ack.control_id != control_id:
            raise ApplicationError("EHR answered without a matching MSA", type=ErrorType.DELIVERY_FAILED)
        if ack.rejected:
            raise ApplicationError(f"EHR rejected the report ({ack.code}): {ack.text}", type=ErrorType.DELIVERY_REJECTED,
                                   non_retryable=True)
        if not ack.accepted:
            raise ApplicationError(f"EHR could not apply the report ({ack.code}): {ack.text}", type=ErrorType.DELIVERY_FAILED)
        activity.logger.info("report v%d of %s delivered to EHR (control %s)", report.version, req.accession, control_id)
        return StepResult(outcome="delivered", detail=f"{report.status.value} v{report.version} ACK {ack.code} ({control_id})")

