"""The radflow DICOM Application Entity: wiring only (contexts, handlers, lifecycle).

One pynetdicom AE serves Verification, Modality Worklist (RAD-5), MPPS (RAD-6/7) and,
when `gateways/dicom/storage.py` is present, Storage (RAD-8). Handlers live in their own
modules and receive their dependencies here. pynetdicom runs each association in a
thread; anything that needs Temporal goes through `LoopBridge` to this event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from typing import Any

from pydicom import config as pydicom_config
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.presentation import DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind, Verification
from pynetdicom.transport import ThreadedAssociationServer

from radflow.gateways.dicom.admission import PerAeLimit
from radflow.gateways.dicom.bridge import LoopBridge
from radflow.gateways.dicom.mpps import MppsService
from radflow.gateways.dicom.observe import on_dimse_sent, traced
from radflow.gateways.dicom.tcp import set_nodelay
from radflow.gateways.dicom.tls import DeferredHandshakeContext, TlsHandshake
from radflow.gateways.dicom.worklist import WorklistService
from radflow.gateways.dicom.read_models import MppsReadModel, WorklistReadModel
from radflow.gateways.dicom.read_models import mpps_store as _mpps_store
from radflow.gateways.dicom.read_models import worklist_store as _worklist_store
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.infra.tls import server_context

log = logging.getLogger("radflow.dicom")

NOT_RECOGNISED = "calling AE title not recognised"


def quiet_pynetdicom(log_level: str) -> None:
    """pynetdicom logs whole identifiers (patient names, IDs) at INFO: PHI stays out of INFO logs.

    pydicom warns with the offending value ("Invalid value for VR DA: '<birth date>'") when a
    peer's dataset holds an invalid one: those stay out of non-DEBUG logs too."""
    debug = log_level.upper() == "DEBUG"
    _config.LOG_REQUEST_IDENTIFIERS = debug
    _config.LOG_RESPONSE_IDENTIFIERS = debug
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("pydicom").setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:  # the same text also goes out as a Python warning (stderr, the journal)
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE


def _on_echo(event: Event) -> int:
    return 0x0000


def _on_rejected(event: Event) -> None:
    requestor = event.assoc.requestor
    allowed = [a.strip() for a in event.assoc.ae.require_calling_aet]
    calling = requestor.ae_title.strip()
    reason = NOT_RECOGNISED if allowed and calling not in allowed else "rejected (association limit or called AE)"
    log.warning("association rejected: %s", reason,
                extra={"calling_ae": calling, "peer": f"{requestor.address}:{requestor.port}"})


class DicomGateway:
    def __init__(self, settings: Settings, service: OrderService, *, worklist_store: WorklistReadModel | None = None,
                 mpps_store: MppsReadModel | None = None, storage: Any = None) -> None:
        self.settings = settings
        self.service = service
        self.worklist_store = worklist_store or _worklist_store(settings)
        self.mpps_store = mpps_store or _mpps_store(settings)
        self.storage = storage
        self.worker: Any = None  # the gateway's own Temporal worker (archive from the spool), with storage
        self.ae: AE | None = None
        self.server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None, "gateway not started"
        return int(self.server.server_address[1])

    def _record_unmatched(self, key: str, details: dict[str, Any]) -> Any:
        from radflow.service.unmatched import record_unmatched

        return record_unmatched(self.service.client, "mpps", key, details, reason="MPPS matches no order",
                                task_queue=self.service.task_queue,
                                rpc_timeout_s=self.service.rpc_timeout.total_seconds())

    def build_ae(self, loop: asyncio.AbstractEventLoop) -> tuple[AE, list[tuple]]:
        s = self.settings
        ae = AE(ae_title=s.dicom_ae_title)
        ae.maximum_associations = s.dicom_max_associations
        ae.acse_timeout = s.dicom_acse_timeout_s  # also the ARTIM wait for A-ASSOCIATE-RQ on a new connection
        ae.network_timeout = s.dicom_network_timeout_s
        ae.dimse_timeout = s.dicom_dimse_timeout_s
        if s.dicom_allowed_aets:
            # pynetdicom answers A-ASSOCIATE-RJ (permanent, service-user, reason 3).
            ae.require_calling_aet = list(s.dicom_allowed_aets)
        for uid in (Verification, ModalityWorklistInformationFind, ModalityPerformedProcedureStep):
            ae.add_supported_context(uid, DEFAULT_TRANSFER_SYNTAXES)

        # Bounded wait for Temporal, a little past the OrderService's own RPC timeout.
        bridge = LoopBridge(loop, timeout_s=self.service.rpc_timeout.total_seconds() + 5.0)
        worklist = WorklistService(self.worklist_store, show_started=s.mwl_show_started, max_results=s.mwl_max_results,
                                   budget_s=s.mwl_query_budget_s)
        mpps = MppsService(self.service, self.mpps_store, self.worklist_store, bridge, self._record_unmatched)
        handlers: list[tuple] = [
            (evt.EVT_CONN_OPEN, set_nodelay),
            (evt.EVT_REJECTED, _on_rejected),
            (evt.EVT_C_ECHO, _on_echo),
            (evt.EVT_C_FIND, worklist.on_find),
            (evt.EVT_N_CREATE, mpps.on_n_create),
            (evt.EVT_N_SET, mpps.on_n_set),
        ]
        if s.dicom_max_associations_per_ae > 0:
            handlers.append((evt.EVT_REQUESTED, PerAeLimit(s.dicom_max_associations_per_ae).on_requested))
        if self.storage is not None:
            for cx in self.storage.contexts():
                ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
            handlers += list(self.storage.handlers())
        # Metrics of every answer and spans around what reaches Temporal (gateways/dicom/observe.py).
        return ae, [*traced(handlers), (evt.EVT_DIMSE_SENT, on_dimse_sent)]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        quiet_pynetdicom(self.settings.log_level)
        if self.storage is not None:
            from radflow.gateways.dicom.archive_worker import GatewayWorker

            await self.storage.start()
            self.worker = GatewayWorker(self.service.client, self.settings)
            await self.worker.start()
        self.ae, handlers = self.build_ae(loop)
        tls = server_context(self.settings, "dicom", context_class=DeferredHandshakeContext)
        if tls is not None:
            handlers.insert(0, (evt.EVT_CONN_OPEN, TlsHandshake(self.settings.dicom_tls_handshake_timeout_s).on_conn_open))
        self.server = self.ae.start_server((self.settings.dicom_host, self.settings.dicom_port), block=False,
                                           evt_handlers=handlers, ssl_context=tls)
        log.info("DICOM gateway listening", extra={"ae_title": self.settings.dicom_ae_title, "port": self.port,
                                                   "storage": self.storage is not None, "tls": tls is not None})

    async def stop(self) -> None:
        """Stop accepting, let running associations finish, then stop storage."""
        if self.server is not None:
            # shutdown() joins association threads, which may be waiting on this loop (bridge).
            await asyncio.to_thread(self.server.shutdown)
            self.server = None
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        if self.storage is not None:
            await self.storage.stop()
        log.info("DICOM gateway stopped")


def storage_available() -> bool:
    return importlib.util.find_spec("radflow.gateways.dicom.storage") is not None


async def start_dicom_gateway(settings: Settings, service: OrderService, *, with_storage: bool = True) -> DicomGateway:
    storage = None
    if with_storage and storage_available():
        from radflow.gateways.dicom.gateway_identity import pin_gateway_id
        from radflow.gateways.dicom.storage import StorageService

        settings = pin_gateway_id(settings)  # the archive queue follows the spool, not the host name
        storage = StorageService(settings, service, asyncio.get_running_loop())
    gateway = DicomGateway(settings, service, storage=storage)
    await gateway.start()
    return gateway
