"""The DICOM gateway as a radflow component (same start/stop shape as the others)."""

from __future__ import annotations

import asyncio

from radflow.gateways.dicom.read_models import describe
from radflow.gateways.dicom.server import DicomGateway, start_dicom_gateway
from radflow.gateways.dicom.purge_task import start_purge, stop_purge
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.infra.tls import listener_enabled


class DicomComponent:
    name = "dicom"

    def __init__(self, service: OrderService, settings: Settings, host: str, port: int) -> None:
        self.service = service
        self.settings = settings.model_copy(update={"dicom_host": host, "dicom_port": port})
        self.gateway: DicomGateway | None = None

    async def start(self) -> None:
        self.gateway = await start_dicom_gateway(self.settings, self.service)
        storage = self.gateway.storage
        self.purge = start_purge(self.settings, worklist=self.gateway.worklist_store, mpps=self.gateway.mpps_store,
                                 spool=storage.spool if storage is not None else None)

    async def stop(self) -> None:
        await stop_purge(getattr(self, "purge", None))
        if self.gateway is not None:
            await self.gateway.stop()

    def endpoints(self) -> list[tuple[str, str]]:
        s = self.settings
        port = self.gateway.port if self.gateway and self.gateway.server else s.dicom_port
        services = "Verification, MWL, MPPS" + (", Storage" if self.gateway and self.gateway.storage else "")
        tls = "TLS; " if listener_enabled(s, "dicom") else ""
        out = [("DICOM", f"{s.dicom_ae_title}@{s.dicom_host}:{port}  ({tls}{services}; {describe(s)})")]
        if self.gateway and self.gateway.worker:
            out.append(("DICOM archiving", f"task queue {self.gateway.worker.queue}  (studies in this gateway's spool)"))
        return out

    async def ready(self) -> str | None:
        """Listening, and the worklist/MPPS stores answer a read (radflow/infra/health.py readiness)."""
        if self.gateway is None or self.gateway.server is None:
            return "DICOM listener not started"
        worker = self.gateway.worker
        if worker is not None and (worker.task is None or worker.task.done()):
            return "archive worker (gateway task queue) not running"
        for name, probe in (("worklist store", self.gateway.worklist_store.count),
                            ("MPPS store", lambda: self.gateway.mpps_store.get("readiness-probe"))):
            try:
                await asyncio.to_thread(probe)
            except Exception as err:
                return f"{name} unavailable ({type(err).__name__})"
        return None

    def failed(self) -> asyncio.Task | None:
        # The gateway's own worker dying means studies stop being archived: the process must not go on.
        return self.gateway.worker.task if self.gateway and self.gateway.worker else None
