"""Storage SCP (RAD-8): radflow as a router in front of the archive.

The C-STORE handler runs in the association's thread and never waits for Temporal: it
walks the encoded dataset to its last byte (a truncated one is answered 0xC000, one
whose SOP UIDs differ from the command or an image without pixel data 0xA900, with the
reason in ErrorComment, and nothing is spooled), reads a handful of header attributes,
spools the encoded dataset as received (no decode/re-encode) and answers success only
once the instance is durable, i.e. once the
spool's single SQLite commit holding its bytes and index row is synced (spool.py); any
failure before that answers 0xA700 so the sender keeps the instance. The study's news
reaches the order workflow through the aggregator on the event loop; forwarding to the
archive is `archive_study`, run by this gateway's own worker (archive_worker.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import zlib

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataset import Dataset
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

from radflow.gateways.dicom.aggregator import StudyAggregator
from radflow.gateways.dicom.dataset_walk import PIXEL_DATA, DatasetError, walk_dataset
from radflow.gateways.dicom.part10 import file_meta
from radflow.gateways.dicom.spool import InstanceHeader, Spool, spool_dir
from radflow.gateways.dicom.read_models import worklist_store
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings

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
DATASET_MISMATCH = 0xA900  # Data Set does not match SOP Class
CANNOT_UNDERSTAND = 0xC000

_CHARSET, _ACCESSION, _MODALITY, _STUDY_DATE = 0x00080005, 0x00080050, 0x00080060, 0x00080020
_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018
_PATIENT_NAME, _PATIENT_ID, _STUDY_UID, _SERIES_UID = 0x00100010, 0x00100020, 0x0020000D, 0x0020000E
_ISSUER = 0x00100021  # IssuerOfPatientID: the order compares it with the MRN's assigning authority
_HEADER_TAGS = frozenset({_CHARSET, _ACCESSION, _MODALITY, _STUDY_DATE, _PATIENT_NAME, _PATIENT_ID, _ISSUER, _STUDY_UID,
                          _SERIES_UID, _SOP_CLASS, _SOP_INSTANCE})
_PIXEL_TAGS = frozenset({PIXEL_DATA, 0x7FE00008, 0x7FE00009})  # PixelData, FloatPixelData, DoubleFloatPixelData
_PN_DELIMITERS = {0x5E, 0x3D}  # ^ and =
MAX_INFLATED_BYTES = 1 << 30  # a deflated dataset may not inflate beyond this (deflate bombs)


class InstanceRefused(Exception):
    """The dataset is answered with a failure status and never spooled."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def read_header(event: Event) -> InstanceHeader:
    """The attributes the router needs, after checking the dataset is whole and usable.

    The whole encoding is walked (lengths and delimiters, never the values: a few
    microseconds), so a truncated dataset is refused here instead of being answered
    Success and spooled. Raises InstanceRefused with the status and reason.
    """
    request = event.request
    ts = UID(event.context.transfer_syntax)
    raw = request.DataSet.getvalue()  # type: ignore[union-attr]
    if ts.is_deflated:
        raw = _inflate(raw)
    try:
        values, present = walk_dataset(raw, _HEADER_TAGS, implicit_vr=ts.is_implicit_VR,
                                       little_endian=ts.is_little_endian, note=_PIXEL_TAGS)
    except DatasetError as err:
        raise InstanceRefused(CANNOT_UNDERSTAND, str(err)) from None

    def text(tag: int) -> str:
        return values.get(tag, b"").decode("latin-1").strip(" \x00")

    sop_class = str(request.AffectedSOPClassUID or "")
    sop_instance = str(request.AffectedSOPInstanceUID or "")
    if not text(_STUDY_UID) or not text(_SERIES_UID) or not sop_instance:
        raise InstanceRefused(CANNOT_UNDERSTAND, "no Study, Series or SOP Instance UID")
    if text(_SOP_CLASS) != sop_class or text(_SOP_INSTANCE) != sop_instance:
        raise InstanceRefused(DATASET_MISMATCH, "SOP Class/Instance UID differ from the C-STORE request")
    if _is_image(sop_class) and not present:
        raise InstanceRefused(DATASET_MISMATCH, "image without Pixel Data")

    charsets = [c.strip() for c in text(_CHARSET).split("\\")] if _CHARSET in values else []
    name = values.get(_PATIENT_NAME, b"")
    return InstanceHeader(
        sop_instance_uid=sop_instance,
        sop_class_uid=sop_class,
        transfer_syntax=str(ts),
        study_uid=text(_STUDY_UID),
        series_uid=text(_SERIES_UID),
        accession=text(_ACCESSION),
        modality=text(_MODALITY),
        patient_id=text(_PATIENT_ID),
        patient_issuer=text(_ISSUER),
        patient_name=decode_bytes(name, convert_encodings(charsets or ["ISO_IR 6"]), _PN_DELIMITERS).strip() if name else "",
        study_date=text(_STUDY_DATE),
        calling_ae=str(event.assoc.requestor.ae_title).strip(),
    )


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, MAX_INFLATED_BYTES)
    except zlib.error as err:
        raise InstanceRefused(CANNOT_UNDERSTAND, f"deflated dataset unreadable: {err}") from None
    if inflater.unconsumed_tail:
        raise InstanceRefused(OUT_OF_RESOURCES, "deflated dataset inflates beyond 1 GiB")
    return out


@functools.lru_cache(maxsize=512)
def _is_image(sop_class_uid: str) -> bool:
    """Image Storage SOP classes must carry pixel data (PS3.3: Image Pixel module, type 1)."""
    return "Image Storage" in UID(sop_class_uid).name


def encoded_instance(event: Event, header: InstanceHeader) -> bytes:
    """The instance as a Part 10 file: our File Meta, then the sender's bytes untouched."""
    meta = file_meta(header.sop_class_uid, header.sop_instance_uid, header.transfer_syntax, header.calling_ae)
    return meta + event.request.DataSet.getvalue()  # type: ignore[union-attr]


def storage_contexts() -> list[PresentationContext]:
    """Every storage SOP class pynetdicom knows (images, SR, documents...), each with the syntaxes above."""
    return [build_context(cx.abstract_syntax, STORAGE_TRANSFER_SYNTAXES) for cx in AllStoragePresentationContexts]


class StudyUidLookup:
    """The order that announced a Study Instance UID: the worklist read model (ZDS-1 / IPC-3 or the
    UID radflow derived for the worklist), else Temporal visibility on the StudyInstanceUID search
    attribute (eventually consistent: a study seconds younger than its order may be missed, and is
    then an unmatched study an operator can link)."""

    def __init__(self, settings: Settings, service: OrderService) -> None:
        self.worklist = worklist_store(settings)
        self.service = service

    async def __call__(self, study_uid: str) -> str | None:
        try:
            found = await asyncio.to_thread(self.worklist.lookup_accession, study_uid=study_uid)
        except Exception:  # read model unavailable (SQLite or PostgreSQL error): Temporal visibility answers
            found = None
        return found or await self.service.accession_for_study(study_uid)


class StorageService:
    def __init__(self, settings: Settings, service: OrderService, loop: asyncio.AbstractEventLoop, *,
                 spool: Spool | None = None, aggregator: StudyAggregator | None = None) -> None:
        self.settings = settings
        self.loop = loop
        self.spool = spool or Spool(spool_dir(settings), fsync=settings.dicom_spool_fsync,
                                    file_threshold=settings.dicom_spool_file_threshold_bytes)
        self.aggregator = aggregator or StudyAggregator(self.spool, service, stable_age_s=settings.dicom_stable_age_s,
                                                        find_by_study_uid=StudyUidLookup(settings, service),
                                                        archive_queue=settings.gateway_task_queue())

    def contexts(self) -> list[PresentationContext]:
        return storage_contexts()

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_C_STORE, self.on_c_store)]

    async def start(self) -> None:
        await self.aggregator.start()

    async def stop(self) -> None:
        await self.aggregator.stop()
        self.spool.close()

    def on_c_store(self, event: Event) -> int | Dataset:
        try:
            header = read_header(event)
        except InstanceRefused as err:
            return _refuse(event, err.status, err.reason)
        except Exception as err:
            return _refuse(event, CANNOT_UNDERSTAND, f"dataset not understood: {type(err).__name__}")
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


def _refuse(event: Event, status: int, reason: str) -> Dataset:
    """A failure status with the reason (ErrorComment): the sender keeps the instance; nothing is spooled."""
    log.warning("C-STORE refused: %s", reason, extra={"calling_ae": str(event.assoc.requestor.ae_title).strip(),
                                                        "status": f"0x{status:04X}"})
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = reason[:64]
    return ds
