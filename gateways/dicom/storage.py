"""Storage SCP (RAD-8): radflow as a router in front of the archive.

The C-STORE handler runs in the association's thread and never waits for Temporal: it
reads a handful of header attributes, spools the encoded dataset as received (no
decode/re-encode) and answers success only once the instance is durable, i.e. once the
spool's single SQLite commit holding its bytes and index row is synced (spool.py); any
failure before that answers 0xA700 so the sender keeps the instance. The study's news
reaches the order workflow through the aggregator on the event loop; forwarding to the
archive is the worker's `archive_study` activity.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from io import BytesIO

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.filereader import read_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    UID,
)
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext, build_context

from gateways.dicom.aggregator import StudyAggregator
from gateways.dicom.part10 import file_meta, scan_header
from gateways.dicom.spool import InstanceHeader, Spool, spool_dir
from radflow.ordering import OrderService
from radflow.settings import Settings

log = logging.getLogger("radflow.dicom.storage")

# Any transfer syntax is fine for a router (pixels are never decoded); the archive must
# accept the same one when we forward.
STORAGE_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

_LAST_HEADER_GROUP = 0x0020  # StudyInstanceUID/SeriesInstanceUID are the last tags needed
_CHARSET, _ACCESSION, _MODALITY, _STUDY_DATE = 0x00080005, 0x00080050, 0x00080060, 0x00080020
_PATIENT_NAME, _PATIENT_ID, _STUDY_UID, _SERIES_UID = 0x00100010, 0x00100020, 0x0020000D, 0x0020000E
_HEADER_TAGS = frozenset({_CHARSET, _ACCESSION, _MODALITY, _STUDY_DATE, _PATIENT_NAME, _PATIENT_ID, _STUDY_UID, _SERIES_UID})
_PN_DELIMITERS = {0x5E, 0x3D}  # ^ and =


def read_header(event: Event) -> InstanceHeader:
    """The few attributes the router needs, read from the raw bytes up to group 0x0020 (never the pixels)."""
    request = event.request
    ts = UID(event.context.transfer_syntax)
    raw = request.DataSet.getvalue()  # type: ignore[union-attr]
    values = None
    if ts.is_little_endian and not ts.is_deflated:
        values = scan_header(raw, _HEADER_TAGS, implicit_vr=ts.is_implicit_VR)
    if values is None:
        return _read_header_with_pydicom(event, ts)

    def text(tag: int) -> str:
        return values.get(tag, b"").decode("latin-1").strip(" \x00")

    charsets = [c.strip() for c in text(_CHARSET).split("\\")] if _CHARSET in values else []
    name = values.get(_PATIENT_NAME, b"")
    return InstanceHeader(
        sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
        sop_class_uid=str(request.AffectedSOPClassUID or ""),
        transfer_syntax=str(ts),
        study_uid=text(_STUDY_UID),
        series_uid=text(_SERIES_UID),
        accession=text(_ACCESSION),
        modality=text(_MODALITY),
        patient_id=text(_PATIENT_ID),
        patient_name=decode_bytes(name, convert_encodings(charsets or ["ISO_IR 6"]), _PN_DELIMITERS).strip() if name else "",
        study_date=text(_STUDY_DATE),
        calling_ae=str(event.assoc.requestor.ae_title).strip(),
    )


def _read_header_with_pydicom(event: Event, ts: UID) -> InstanceHeader:
    request = event.request
    if ts.is_deflated:
        ds = event.dataset  # pynetdicom inflates it
    else:
        raw = request.DataSet.getvalue()  # type: ignore[union-attr]
        ds = read_dataset(BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian,
                          stop_when=lambda tag, vr, length: tag.group > _LAST_HEADER_GROUP)
    return InstanceHeader(
        sop_instance_uid=str(request.AffectedSOPInstanceUID or ds.get("SOPInstanceUID", "")),
        sop_class_uid=str(request.AffectedSOPClassUID or ds.get("SOPClassUID", "")),
        transfer_syntax=str(ts),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        accession=str(ds.get("AccessionNumber", "") or "").strip(),
        modality=str(ds.get("Modality", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        patient_name=str(ds.get("PatientName", "") or ""),
        study_date=str(ds.get("StudyDate", "") or ""),
        calling_ae=str(event.assoc.requestor.ae_title).strip(),
    )


def encoded_instance(event: Event, header: InstanceHeader) -> bytes:
    """The instance as a Part 10 file: our File Meta, then the sender's bytes untouched."""
    meta = file_meta(header.sop_class_uid, header.sop_instance_uid, header.transfer_syntax, header.calling_ae)
    return meta + event.request.DataSet.getvalue()  # type: ignore[union-attr]


def storage_contexts() -> list[PresentationContext]:
    """Every storage SOP class pynetdicom knows (images, SR, documents...), each with the syntaxes above."""
    return [build_context(cx.abstract_syntax, STORAGE_TRANSFER_SYNTAXES) for cx in AllStoragePresentationContexts]


class StorageService:
    def __init__(self, settings: Settings, service: OrderService, loop: asyncio.AbstractEventLoop, *,
                 spool: Spool | None = None, aggregator: StudyAggregator | None = None) -> None:
        self.settings = settings
        self.loop = loop
        self.spool = spool or Spool(spool_dir(settings), fsync=settings.dicom_spool_fsync,
                                    file_threshold=settings.dicom_spool_file_threshold_bytes)
        self.aggregator = aggregator or StudyAggregator(self.spool, service, stable_age_s=settings.dicom_stable_age_s)

    def contexts(self) -> list[PresentationContext]:
        return storage_contexts()

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_C_STORE, self.on_c_store)]

    async def start(self) -> None:
        await self.aggregator.start()

    async def stop(self) -> None:
        await self.aggregator.stop()
        self.spool.close()

    def on_c_store(self, event: Event) -> int:
        try:
            header = read_header(event)
        except Exception as err:
            log.warning("C-STORE dataset not understood", extra={"error": str(err)[:200]})
            return CANNOT_UNDERSTAND
        if not header.sop_instance_uid or not header.study_uid or not header.series_uid:
            log.warning("C-STORE without SOP instance, study or series UID", extra={"calling_ae": header.calling_ae})
            return CANNOT_UNDERSTAND
        try:
            self.spool.store(header, encoded_instance(event, header))
        except (OSError, sqlite3.Error) as err:
            # Not durable = not received: the sender keeps the instance and retries.
            log.error("spooling failed", extra={"study_uid": header.study_uid, "error": str(err)[:200]})
            return OUT_OF_RESOURCES
        try:
            self.loop.call_soon_threadsafe(self.aggregator.instance_received, header.study_uid, self.spool.clock())
        except RuntimeError:
            pass  # loop closing: the spool index has it, the restarted aggregator will tell the order
        return SUCCESS
