"""The one module where HL7 v2 fields meet the order model.

`map_message(parsed, config)` turns a parsed message into `Hl7Command`s (one per order
group, patient or merge pair) that tell the gateway what to do; it never talks to
Temporal. A message we cannot use becomes a single UNSUPPORTED command carrying the
HL7 table 0357 error code and the reason, which the gateway answers with AR.

Field choices (IHE RAD TF-2 Appendix B where it speaks, site conventions where it does not):
- Patient: PID-3 repetition with identifier type MR (else the first; PID-2 as a v2.2 fallback),
  assigning authority PID-3.4; name PID-5 (legal name repetition preferred); PID-7; PID-8.
- Visit: PV1-2 class, PV1-3 location, PV1-19 visit number, PV1-8 referring physician.
- Order: ORC-1 control; placer ORC-2/OBR-2 (application from .2, else MSH-3); filler ORC-3/OBR-3;
  procedure OBR-4; requested time OBR-6/ORC-9; ordering provider ORC-12/OBR-16; reason OBR-31;
  priority TQ1-9/OBR-27.6/ORC-7.6/OBR-5; scheduled start OBR-36/TQ1-7/OBR-27.4/ORC-7.4.
- Accession: IPC-1 (OMI), else the configured fields (default OBR-18, ORC-3, OBR-3), first non-empty.
- Worklist: IPC-2 (v2.3/2.4: OBR-19 placer field 2) requested procedure id, IPC-3 or ZDS-1 Study
  Instance UID, IPC-4 (v2.3/2.4: OBR-20 filler field 1) SPS id, IPC-5 or OBR-24 modality, IPC-6 protocol
  code (Scheduled Protocol Code Sequence), IPC-7
  station name, IPC-8 SPS location (the OBR-18/19/20 uses follow IHE RAD-4 for v2.3.1). Station AE
  title from the configured fields: default IPC-9, then OBR-21 (filler field 2, free in IHE's
  v2.3.1 use of OBR; a site convention, change `hl7_station_ae_fields` to match the feed).
- Report: OBR-25 P/F/C; OBX-5 of TX/FT/ST joined by newlines (repetitions are lines), ED documents
  as attachments, UID rows as imaging references (domain/hl7/observations.py); OBX-14 or OBR-7
  observation time; OBR-32 principal result interpreter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.hl7.observations import report_content
from radflow.domain.hl7.grammar import check_grammar
from radflow.domain.hl7.parse import NULL, ErrorCode, FieldSpec, Hl7Error, ParsedMessage, Segment, segment_name
from radflow.domain.order import (
    EventKind,
    OrderData,
    OrderEvent,
    Patient,
    PatientKey,
    PersonName,
    Procedure,
    Provider,
    Report,
    Schedule,
    Visit,
)

DEFAULT_ACCESSION_FIELDS = ("OBR-18", "ORC-3", "OBR-3")
DEFAULT_STATION_AE_FIELDS = ("IPC-9", "OBR-21")

ADT_EVENTS = {"A01", "A04", "A08", "A31"}
MERGE_EVENT = "A40"
ORDER_CONTROL_EVENTS = {
    "XO": EventKind.ORDER_CHANGED,
    "SC": EventKind.STATUS_CHANGED,
    "CA": EventKind.CANCEL,
    "OC": EventKind.CANCEL,  # cancelled by the filler: same outcome for radflow
    "DC": EventKind.DISCONTINUE,
    "OD": EventKind.DISCONTINUE,  # discontinued by the filler
}
REPORT_STATUS = {"P": ReportStatus.PRELIMINARY, "F": ReportStatus.FINAL, "C": ReportStatus.CORRECTED}
# HL7 table 0074 (diagnostic service section) terms that name a DICOM modality.
_SECTION_MODALITY = {"NMR": "MR", "NMS": "NM", "VUS": "US", "OUS": "US", "CUS": "US", "RX": "CR"}
_DICOM_MODALITIES = {
    "CR", "CT", "MR", "US", "NM", "PT", "XA", "RF", "DX", "MG", "IO", "PX", "OT", "ES", "XC", "OP", "SM", "BMD", "IVUS", "OCT",
}


# HL7 null semantics: the fields each stored value is read from, in order of preference.
# On changes (A08/A31/A40, ORC XO) an empty value keeps what is stored; a value whose
# fields are empty and at least one is `""` is deleted (see domain.merge).
PATIENT_SOURCES: dict[str, tuple[str, ...]] = {
    "patient.name": ("PID-5",),
    "patient.birth_date": ("PID-7",),
    "patient.sex": ("PID-8",),
}
ORDER_SOURCES: dict[str, tuple[str, ...]] = {
    **PATIENT_SOURCES,
    "filler_number": ("ORC-3", "OBR-3"),
    "visit.patient_class": ("PV1-2",),
    "visit.location": ("PV1-3",),
    "visit.visit_number": ("PV1-19",),
    "referring_physician": ("PV1-8",),
    "procedure": ("OBR-4", "OBR-44", "IPC-6"),
    "ordering_provider": ("ORC-12", "OBR-16"),
    "priority": ("TQ1-9", "OBR-27.6", "ORC-7.6", "OBR-5"),
    "reason": ("OBR-31",),
    "requested_at": ("OBR-6", "ORC-9"),
    "study_instance_uid": ("IPC-3", "ZDS-1"),
    "schedule.station_ae": (),  # the configured station AE fields (settings)
    "schedule.modality": ("IPC-5", "OBR-24"),
    "schedule.start": ("OBR-36", "TQ1-7", "OBR-27.4", "ORC-7.4"),
    "schedule.station_name": ("IPC-7",),
    "schedule.location": ("IPC-8",),
    "schedule.sps_id": ("IPC-4", "OBR-20"),
    "schedule.requested_procedure_id": ("IPC-2", "OBR-19"),
    "schedule.protocol": ("IPC-6",),
}


class CommandKind(StrEnum):
    START_ORDER = "start_order"  # NW: create the order (allocate an accession when it has none)
    ORDER_EVENT = "order_event"  # XO/SC/CA/DC/ORU: an event for one order (accession or placer)
    PATIENT_FANOUT = "patient_fanout"  # ADT: the event goes to every open order of fanout_mrn
    UNSUPPORTED = "unsupported"  # answer AR with error_code / reason


@dataclass
class Hl7Command:
    kind: CommandKind
    label: str  # e.g. "ORM^O01 NW", for logs
    control_id: str = ""
    order: OrderData | None = None
    accession: str = ""
    placer_number: str = ""
    placer_app: str = ""
    event: OrderEvent | None = None
    fanout_mrn: str = ""
    error_code: int = 0
    reason: str = ""
    location: str = ""
    documents: dict[str, bytes] = field(default_factory=dict)  # report attachments by SHA-256, stored before the event
    repairs: list[str] = field(default_factory=list)  # recorded on the order's timeline

    @property
    def placer_key(self) -> str:
        """The allocator's key for an order without accession: placer number^placer application."""
        return f"{self.placer_number}^{self.placer_app}"


@dataclass(frozen=True)
class MappingConfig:
    accession_fields: tuple[FieldSpec, ...] = tuple(FieldSpec.parse(s) for s in DEFAULT_ACCESSION_FIELDS)
    station_ae_fields: tuple[FieldSpec, ...] = tuple(FieldSpec.parse(s) for s in DEFAULT_STATION_AE_FIELDS)
    default_timezone: str = "UTC"

    @classmethod
    def from_settings(cls, settings: Any) -> MappingConfig:
        """Duck-typed on radflow.infra.settings.Settings (domain does not import radflow)."""
        acc = getattr(settings, "hl7_accession_fields", None) or DEFAULT_ACCESSION_FIELDS
        ae = getattr(settings, "hl7_station_ae_fields", None) or DEFAULT_STATION_AE_FIELDS
        return cls(
            accession_fields=tuple(FieldSpec.parse(s) for s in acc),
            station_ae_fields=tuple(FieldSpec.parse(s) for s in ae),
            default_timezone=getattr(settings, "hl7_default_timezone", "UTC") or "UTC",
        )


def map_message(pm: ParsedMessage, config: MappingConfig | None = None, charset: str = "") -> list[Hl7Command]:
    """Commands for one parsed message; [UNSUPPORTED] when it cannot be used.

    `charset` is the effective character set of the frame (declared or detected), stored
    on orders so the worklist can declare it to modalities.
    """
    cfg = config or MappingConfig()
    try:
        check_grammar([segment_name(seg) for seg in pm.all_segments()], pm.label)
        return _Mapper(pm, cfg, charset or pm.declared_charset).commands()
    except Hl7Error as err:
        return [
            Hl7Command(
                CommandKind.UNSUPPORTED,
                pm.label,
                control_id=pm.control_id,
                error_code=int(err.code),
                reason=err.reason,
                location=err.location,
            )
        ]


# ------------------------------------------------------------------ times
_DTM = re.compile(
    r"^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?([+-]\d{4})?$"
)


@lru_cache(maxsize=32)
def _zone(name: str) -> tzinfo:
    return timezone.utc if name.upper() in ("UTC", "Z") else ZoneInfo(name)


def parse_hl7_datetime(value: str, default_tz: str = "UTC") -> datetime | None:
    """HL7 DTM/TS `YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]` -> aware datetime; "" -> None.

    Without an offset the time is local to the site (`default_tz`). Raises ValueError
    for text that is not a DTM.
    """
    value = value.strip()
    if not value:
        return None
    m = _DTM.match(value)
    if not m:
        raise ValueError(f"not an HL7 date/time: {value!r}")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    naive = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0), micro)
    if offset:
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return naive.replace(tzinfo=timezone(sign * delta))
    return naive.replace(tzinfo=_zone(default_tz))


@dataclass
class OrderGroup:
    """ORC/OBR with the segments that follow them (TQ1, IPC, OBX, Z-segments)."""

    orc: Segment | None = None
    obr: Segment | None = None
    tq1: Segment | None = None
    ipc: list[Segment] = field(default_factory=list)
    obx: list[Segment] = field(default_factory=list)
    extra: dict[str, Segment] = field(default_factory=dict)

    def segment(self, name: str) -> Segment | None:
        if name == "ORC":
            return self.orc
        if name == "OBR":
            return self.obr
        if name == "TQ1":
            return self.tq1
        if name == "IPC":
            return self.ipc[0] if self.ipc else None
        return self.extra.get(name)


def order_groups(pm: ParsedMessage) -> list[OrderGroup]:
    groups: list[OrderGroup] = []
    current: OrderGroup | None = None
    for seg in pm.all_segments():
        name = segment_name(seg)
        if name == "ORC":
            current = OrderGroup(orc=seg)
            groups.append(current)
        elif name == "OBR":
            if current is None or current.obr is not None:
                current = OrderGroup()
                groups.append(current)
            current.obr = seg
        elif current is None:
            continue
        elif name == "TQ1":
            current.tq1 = current.tq1 or seg
        elif name == "IPC":
            current.ipc.append(seg)
        elif name == "OBX":
            current.obx.append(seg)
        elif name not in current.extra:
            current.extra[name] = seg
    return groups


class _Mapper:
    def __init__(self, pm: ParsedMessage, cfg: MappingConfig, charset: str) -> None:
        self.pm = pm
        self.cfg = cfg
        self.charset = charset
        self.control_id = pm.control_id

    def commands(self) -> list[Hl7Command]:
        kind, trigger = self.pm.message_type, self.pm.trigger
        if kind == "ADT":
            if trigger in ADT_EVENTS:
                return self._adt_update()
            if trigger == MERGE_EVENT:
                return self._adt_merge()
            raise Hl7Error(ErrorCode.UNSUPPORTED_EVENT, f"unsupported ADT event {trigger}", "MSH-9.2")
        if kind == "ORM":
            if trigger != "O01":
                raise Hl7Error(ErrorCode.UNSUPPORTED_EVENT, f"unsupported ORM event {trigger}", "MSH-9.2")
            return self._orders()
        if kind == "OMI":
            if trigger != "O23":
                raise Hl7Error(ErrorCode.UNSUPPORTED_EVENT, f"unsupported OMI event {trigger}", "MSH-9.2")
            return self._orders()
        if kind == "ORU":
            if trigger != "R01":
                raise Hl7Error(ErrorCode.UNSUPPORTED_EVENT, f"unsupported ORU event {trigger}", "MSH-9.2")
            return self._reports()
        raise Hl7Error(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, f"unsupported message type {kind}^{trigger}", "MSH-9")

    # ------------------------------------------------------------ values
    def _get(self, seg: Segment | None, f: int, c: int = 1, s: int = 1, rep: int = 1) -> str:
        return self.pm.get(seg, f, c, s, rep)

    def _dtm(self, seg: Segment | None, f: int, c: int = 1, where: str = "", strict: bool = True) -> datetime | None:
        try:
            return parse_hl7_datetime(self._get(seg, f, c), self.cfg.default_timezone)
        except ValueError as err:
            if not strict:
                return None
            raise Hl7Error(ErrorCode.DATA_TYPE, str(err), where) from err

    def _event_time(self) -> datetime | None:
        evn = self.pm.first("EVN")
        return self._dtm(evn, 2, strict=False) or self._dtm(self.pm.msh, 7, strict=False)

    def _group_value(self, g: OrderGroup, spec: FieldSpec) -> str:
        seg = g.segment(spec.segment)
        if seg is None and spec.segment not in ("ORC", "OBR", "TQ1", "IPC"):
            seg = self.pm.first(spec.segment)
        return self._get(seg, spec.field, spec.component, spec.subcomponent)

    def _cleared(self, sources: dict[str, tuple[str, ...]], g: OrderGroup | None = None,
                 patient_seg: Segment | None = None) -> list[str]:
        """Paths whose source fields are all empty with at least one sent as `""` (delete)."""
        out = []
        for path, specs in sources.items():
            fields = _specs(specs) or self.cfg.station_ae_fields
            raws = [self._raw_at(spec, g, patient_seg) for spec in fields]
            if NULL in raws and all(r in ("", NULL) for r in raws):
                out.append(path)
        return out

    def _raw_at(self, spec: FieldSpec, g: OrderGroup | None, patient_seg: Segment | None) -> str:
        if spec.segment == "PID" and patient_seg is not None:
            seg = patient_seg
        elif g is not None and spec.segment in ("ORC", "OBR", "TQ1", "IPC"):
            seg = g.segment(spec.segment)
        else:
            seg = (g.segment(spec.segment) if g is not None else None) or self.pm.first(spec.segment)
        # A whole field sent as "" is the field's null; a component as "" nulls that component.
        if spec.component == 1:
            return self.pm.field_text(seg, spec.field)
        return self.pm.raw(seg, spec.field, spec.component)

    # ------------------------------------------------------------ people
    def _name(self, seg: Segment | None, f: int, rep: int = 1, offset: int = 0) -> PersonName:
        """XPN (offset 0: family, given, middle, suffix, prefix) or XCN (offset 1: id first)."""
        g = self._get
        return PersonName(
            family=g(seg, f, 1 + offset, 1, rep),
            given=g(seg, f, 2 + offset, 1, rep),
            middle=g(seg, f, 3 + offset, 1, rep),
            suffix=g(seg, f, 4 + offset, 1, rep),
            prefix=g(seg, f, 5 + offset, 1, rep),
        )

    def _provider(self, seg: Segment | None, f: int) -> Provider:
        return Provider(id=self._get(seg, f, 1), name=self._name(seg, f, offset=1))

    def _patient(self, pid: Segment | None) -> Patient:
        if pid is None:
            raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "PID segment is required", "PID")
        g = self._get
        reps = self.pm.repetitions(pid, 3)
        chosen = 1
        for rep in range(1, reps + 1):
            if g(pid, 3, 5, 1, rep).upper() == "MR" and g(pid, 3, 1, 1, rep):
                chosen = rep
                break
        else:
            for rep in range(1, reps + 1):
                if g(pid, 3, 1, 1, rep):
                    chosen = rep
                    break
        mrn = g(pid, 3, 1, 1, chosen)
        issuer = g(pid, 3, 4, 1, chosen) or g(pid, 3, 4, 2, chosen)
        if not mrn:  # v2.2/2.3 feeds that still carry the MRN in PID-2
            mrn, issuer = g(pid, 2, 1), g(pid, 2, 4)
        if not mrn:
            raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 patient identifier is required", "PID-3")
        name_rep = 1
        for rep in range(1, self.pm.repetitions(pid, 5) + 1):
            if g(pid, 5, 7, 1, rep).upper() == "L":
                name_rep = rep
                break
        birth = re.sub(r"\D", "", g(pid, 7, 1))[:8]
        return Patient(mrn=mrn, issuer=issuer, name=self._name(pid, 5, name_rep), birth_date=birth, sex=g(pid, 8).upper()[:1])

    def _visit(self) -> tuple[Visit, PersonName]:
        pv1 = self.pm.first("PV1")
        g = self._get
        location = "^".join([g(pv1, 3, 1), g(pv1, 3, 2), g(pv1, 3, 3)]).rstrip("^")
        visit = Visit(patient_class=g(pv1, 2), visit_number=g(pv1, 19, 1), location=location)
        return visit, self._name(pv1, 8, offset=1)

    # ------------------------------------------------------------ ADT
    def _adt_update(self) -> list[Hl7Command]:
        at = self._event_time()
        out = []
        for pid in self.pm.segments("PID") or [None]:
            patient = self._patient(pid)
            event = OrderEvent(kind=EventKind.PATIENT_UPDATED, source=EventSource.HL7, control_id=self.control_id, at=at,
                               message_key=self.pm.message_key, repairs=list(self.pm.repairs), patient=patient, partial=True, cleared=self._cleared(PATIENT_SOURCES, patient_seg=pid))
            out.append(Hl7Command(CommandKind.PATIENT_FANOUT, self.pm.label, self.control_id, event=event, fanout_mrn=patient.mrn))
        return out

    def _adt_merge(self) -> list[Hl7Command]:
        at = self._event_time()
        pairs: list[list[Segment | None]] = []
        for seg in self.pm.all_segments():
            name = segment_name(seg)
            if name == "PID":
                pairs.append([seg, None])
            elif name == "MRG" and pairs and pairs[-1][1] is None:
                pairs[-1][1] = seg
        if not pairs:
            raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "PID segment is required", "PID")
        out = []
        for pid, mrg in pairs:
            if mrg is None:
                raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "MRG segment is required for a merge", "MRG")
            survivor = self._patient(pid)
            old = PatientKey(mrn=self._get(mrg, 1, 1), issuer=self._get(mrg, 1, 4) or self._get(mrg, 1, 4, 2))
            if not old.mrn:
                raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "MRG-1 prior patient identifier is required", "MRG-1")
            event = OrderEvent(
                kind=EventKind.PATIENT_MERGED, source=EventSource.HL7, control_id=self.control_id, at=at,
                message_key=self.pm.message_key, repairs=list(self.pm.repairs),
                patient=survivor, merged_from=old, partial=True, cleared=self._cleared(PATIENT_SOURCES, patient_seg=pid),
            )
            out.append(Hl7Command(CommandKind.PATIENT_FANOUT, self.pm.label, self.control_id, event=event, fanout_mrn=old.mrn))
        return out

    # ------------------------------------------------------------ orders
    def _orders(self) -> list[Hl7Command]:
        groups = order_groups(self.pm)
        if not groups or all(g.orc is None for g in groups):
            raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "ORC segment is required", "ORC")
        out = []
        for g in groups:
            if g.orc is None:
                raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "OBR without its ORC", "OBR")
            out.append(self._order_command(g))
        return out

    def _order_command(self, g: OrderGroup) -> Hl7Command:
        control = self._get(g.orc, 1).upper()
        if not control:
            raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "ORC-1 order control is required", "ORC-1")
        label = f"{self.pm.label} {control}"
        placer, placer_app, accession = self._order_keys(g)
        cmd = Hl7Command(CommandKind.ORDER_EVENT, label, self.control_id, accession=accession, placer_number=placer, placer_app=placer_app)
        if control == "NW" or control == "XO":
            order = self._order_data(g, accession, placer)
            if control == "NW":
                if not accession and not placer:
                    raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "new order without accession or placer order number", "ORC-2")
                if not (order.procedure.code or order.procedure.text or self._get(g.segment("IPC"), 6, 1)):
                    # An order nobody can perform; the procedure may also come as OBR-44 or IPC-6 (protocol).
                    raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING,
                                   "new order without a procedure (OBR-4, OBR-44 or IPC-6)", "OBR-4")
                cmd.kind = CommandKind.START_ORDER
                cmd.order = order
                cmd.repairs = list(self.pm.repairs)
                return cmd
            cmd.event = self._event(EventKind.ORDER_CHANGED, order=order, partial=True, cleared=self._cleared(ORDER_SOURCES, g))
        elif control in ORDER_CONTROL_EVENTS:
            kind = ORDER_CONTROL_EVENTS[control]
            status = self._get(g.orc, 5).upper()
            if kind == EventKind.STATUS_CHANGED and not status:
                raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "ORC-5 order status is required for SC", "ORC-5")
            reason = self._get(g.orc, 16, 2) or self._get(g.orc, 16, 1)
            cmd.event = self._event(kind, order_status=status, reason=reason)
        else:
            raise Hl7Error(ErrorCode.TABLE_VALUE_NOT_FOUND, f"unsupported order control {control}", "ORC-1")
        if not accession and not placer:
            raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "no accession or placer order number to find the order", "ORC-2")
        return cmd

    def _event(self, kind: EventKind, **fields: Any) -> OrderEvent:
        return OrderEvent(kind=kind, source=EventSource.HL7, control_id=self.control_id, at=self._event_time(),
                          message_key=self.pm.message_key, repairs=list(self.pm.repairs), **fields)

    def _order_keys(self, g: OrderGroup) -> tuple[str, str, str]:
        get = self._get
        placer = get(g.orc, 2, 1) or get(g.obr, 2, 1)
        placer_app = get(g.orc, 2, 2) or get(g.obr, 2, 2) or self.pm.sending_application
        accession = get(g.segment("IPC"), 1, 1)
        if not accession:
            for spec in self.cfg.accession_fields:
                accession = self._group_value(g, spec)
                if accession:
                    break
        return placer, placer_app, accession

    def _order_data(self, g: OrderGroup, accession: str, placer: str) -> OrderData:
        if g.obr is None:
            raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "OBR segment is required for a new or changed order", "OBR")
        get, orc, obr, tq1, ipc = self._get, g.orc, g.obr, g.tq1, g.segment("IPC")
        patient = self._patient(self.pm.first("PID"))
        visit, referring = self._visit()
        start = (
            self._dtm(obr, 36, where="OBR-36")
            or self._dtm(tq1, 7, where="TQ1-7")
            or self._dtm(obr, 27, 4, where="OBR-27.4")
            or self._dtm(orc, 7, 4, where="ORC-7.4")
        )
        station_ae = ""
        for spec in self.cfg.station_ae_fields:
            station_ae = self._group_value(g, spec)
            if station_ae:
                break
        schedule = Schedule(
            station_ae=station_ae,
            modality=get(ipc, 5, 1).upper() or _modality_from_section(get(obr, 24)),
            start=start,
            station_name=get(ipc, 7, 1),
            location=get(ipc, 8, 1),
            sps_id=get(ipc, 4, 1) or get(obr, 20, 1),
            requested_procedure_id=get(ipc, 2, 1) or get(obr, 19, 1),
            protocol=Procedure(code=get(ipc, 6, 1), text=get(ipc, 6, 2), coding_system=get(ipc, 6, 3)),
        )
        provider = self._provider(orc, 12)
        if not provider.id and not provider.name.family:
            provider = self._provider(obr, 16)
        return OrderData(
            accession=accession,
            placer_number=placer,
            filler_number=get(orc, 3, 1) or get(obr, 3, 1),
            patient=patient,
            visit=visit,
            procedure=self._procedure(obr, ipc),
            schedule=schedule,
            ordering_provider=provider,
            referring_physician=referring,
            priority=(get(tq1, 9, 1) or get(obr, 27, 6) or get(orc, 7, 6) or get(obr, 5)).upper(),
            reason=get(obr, 31, 2) or get(obr, 31, 1),
            requested_at=self._dtm(obr, 6, where="OBR-6") or self._dtm(orc, 9, where="ORC-9"),
            study_instance_uid=get(ipc, 3, 1) or get(g.segment("ZDS") or self.pm.first("ZDS"), 1, 1),
            character_set=self.charset,
        )

    def _procedure(self, obr: Segment, ipc: Segment | None = None) -> Procedure:
        """OBR-4 (universal service id), else OBR-44 (procedure code, v2.3+), else IPC-6
        (protocol code, OMI): an order always names what is to be done when it can."""
        get = self._get
        for seg, f in ((obr, 4), (obr, 44), (ipc, 6)):
            if seg is not None and (get(seg, f, 1) or get(seg, f, 2)):
                return Procedure(code=get(seg, f, 1), text=get(seg, f, 2), coding_system=get(seg, f, 3))
        return Procedure()

    # ------------------------------------------------------------ reports
    def _reports(self) -> list[Hl7Command]:
        groups = [g for g in order_groups(self.pm) if g.obr is not None]
        if not groups:
            raise Hl7Error(ErrorCode.SEGMENT_SEQUENCE, "OBR segment is required", "OBR")
        out = []
        for g in groups:
            placer, placer_app, accession = self._order_keys(g)
            if not accession and not placer:
                raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "no accession or placer order number to find the order", "OBR-2")
            code = self._get(g.obr, 25).upper()
            if not code:
                raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "OBR-25 result status is required", "OBR-25")
            status = REPORT_STATUS.get(code)
            if status is None:
                raise Hl7Error(ErrorCode.TABLE_VALUE_NOT_FOUND, f"unsupported result status {code} (P, F or C)", "OBR-25")
            content = report_content(self.pm, g.obx)
            report = Report(
                status=status,
                text=content.text,
                attachments=content.attachments,
                imaging_references=content.references,
                observed_at=self._observed_at(g),
                interpreter=self._interpreter(g.obr),
                received_control_id=self.control_id,
            )
            out.append(
                Hl7Command(
                    CommandKind.ORDER_EVENT, f"{self.pm.label} {code}", self.control_id, accession=accession,
                    placer_number=placer, placer_app=placer_app, event=self._event(EventKind.REPORT, report=report),
                    documents=content.documents,
                )
            )
        return out

    def _observed_at(self, g: OrderGroup) -> datetime | None:
        for obx in g.obx:
            when = self._dtm(obx, 14, where="OBX-14")
            if when:
                return when
        return self._dtm(g.obr, 7, where="OBR-7")

    def _interpreter(self, obr: Segment | None) -> PersonName:
        # OBR-32 is NDL: its first component is a CNN whose parts are subcomponents.
        g = self._get
        if g(obr, 32, 1, 2):
            return PersonName(
                family=g(obr, 32, 1, 2), given=g(obr, 32, 1, 3), middle=g(obr, 32, 1, 4),
                suffix=g(obr, 32, 1, 5), prefix=g(obr, 32, 1, 6),
            )
        if g(obr, 32, 2) and not g(obr, 32, 2)[:1].isdigit():  # sent as XCN by mistake
            return self._name(obr, 32, offset=1)
        return PersonName()


@lru_cache(maxsize=64)
def _specs(addresses: tuple[str, ...]) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec.parse(a) for a in addresses)


def _modality_from_section(section: str) -> str:
    code = section.strip().upper()
    if code in _DICOM_MODALITIES:
        return code
    return _SECTION_MODALITY.get(code, "")
