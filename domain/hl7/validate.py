"""Refuse (AR) what Temporal or the worklist cannot hold, before the gateway calls Temporal.

The rules are domain/identifiers.py's; this maps them onto HL7 fields so ERR-2 points at
the field the sender has to fix. Locations name the default field for each value (the
accession may come from another configured field).
"""

from __future__ import annotations

from radflow.domain.hl7.limits import Hl7Limits
from radflow.domain.hl7.mapping import CommandKind, Hl7Command
from radflow.domain.hl7.parse import ErrorCode, Hl7Error
from radflow.domain.identifiers import ACCESSION, CONTROL_ID, LONG_ID, TOO_LONG, order_problems, patient_problems, problem

_ORDER_FIELDS = {
    "accession": "OBR-18",
    "placer_number": "ORC-2",
    "filler_number": "ORC-3",
    "study_instance_uid": "IPC-3",
    "station_ae": "IPC-9",
    "sps_id": "IPC-4",
    "requested_procedure_id": "IPC-2",
    "procedure": "OBR-4",
    "referring_physician": "PV1-8",
    "ordering_provider": "ORC-12",
    "patient.mrn": "PID-3",
    "patient.issuer": "PID-3.4",
    "patient.name": "PID-5",
}


def validate_commands(commands: list[Hl7Command], control_id: str, limits: Hl7Limits) -> None:
    """Raise Hl7Error for the first value that cannot be stored or sent on."""
    _raise(problem("MSH-10 message control id", control_id, CONTROL_ID), "MSH-10")
    for cmd in commands:
        if cmd.kind == CommandKind.UNSUPPORTED:
            continue
        _raise(problem("accession number", cmd.accession, ACCESSION), "OBR-18")
        _raise(problem("placer order number", cmd.placer_number, LONG_ID), "ORC-2")
        _raise(problem("placer application", cmd.placer_app, LONG_ID), "ORC-2.2")
        if cmd.order is not None:
            _order(cmd.order)
        event = cmd.event
        if event is None:
            continue
        if event.order is not None:
            _order(event.order)
        if event.patient is not None:
            for field, reason in patient_problems(event.patient):
                _raise(reason, _ORDER_FIELDS[f"patient.{field}"])
        if event.merged_from is not None:
            for _, reason in patient_problems(event.merged_from, "prior patient"):
                _raise(reason, "MRG-1")
        if event.report is not None and event.report.text:
            lines = event.report.text.count("\n") + 1
            if lines > limits.max_report_lines:
                _raise(f"report text has {lines} lines, more than the limit of {limits.max_report_lines}", "OBX-5",
                       ErrorCode.VALUE_TOO_LONG)


def _order(order) -> None:
    for field, reason in order_problems(order):
        _raise(reason, _ORDER_FIELDS.get(field, ""))


def _raise(reason: str | None, location: str, code: ErrorCode = ErrorCode.DATA_TYPE) -> None:
    if reason:
        raise Hl7Error(ErrorCode.VALUE_TOO_LONG if f" {TOO_LONG} " in reason else code, reason, location)
