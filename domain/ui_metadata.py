"""What the Temporal UI shows of an order: user metadata and current details, without PHI.

Pure text builders (no I/O): the start paths set the static summary/details, the order
workflow sets the current details on every change (`workflow.set_current_details`).
Patient names, MRNs and birth dates never appear here: the UI is read by more people
than the order's chart, and these strings are stored unencrypted in the workflow history.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import ValidationError

from radflow.domain import definitions as d
from radflow.domain.order import OperatorAction, OrderData, OrderState

SEP = " · "


def static_summary(order: OrderData) -> str:
    """One line for the workflow list, e.g. `CT · CT head w/o contrast · ACC1001 @ CT01 · 2030-03-05 14:30`."""
    s = order.schedule
    parts = [s.modality, order.procedure.text or order.procedure.code or "no procedure",
             f"{order.accession} @ {s.station_ae}" if s.station_ae else order.accession,
             _minute(s.start) if s.start is not None else "unscheduled"]
    return SEP.join(p for p in parts if p)


def static_details(order: OrderData, api_url: str = "") -> str:
    """Identifiers and links (markdown); no patient identity."""
    acc = order.accession
    rows = [
        ("Accession", acc),
        ("Placer order", order.placer_number),
        ("Filler order", order.filler_number),
        ("Procedure", " ".join(p for p in (order.procedure.code, f"({order.procedure.coding_system})"
                                            if order.procedure.coding_system else "") if p)),
        ("Modality", order.schedule.modality),
        ("Station AE", order.schedule.station_ae),
        ("Scheduled", _minute(order.schedule.start) if order.schedule.start else ""),
        ("Study Instance UID", order.study_instance_uid),
        ("Priority", order.priority),
    ]
    lines = [f"**{k}**: {v}" for k, v in rows if v]
    base = api_url.rstrip("/")
    if base:
        lines.append(f"Order: [{base}/orders/{acc}]({base}/orders/{acc}) · "
                     f"timeline: [{base}/orders/{acc}/timeline]({base}/orders/{acc}/timeline)")
    lines.append(f"CLI: `radflow orders show {acc}` · `radflow orders timeline {acc}`")
    return "\n\n".join(lines)


_REPORT_VIA = {"hl7": "ORU to EHR", "fhir": "DiagnosticReport"}


def activity_summary(lane: str, kind: str, state: OrderState, kinds: list[str], instances: int = 0) -> str:
    """What a lane's activity does, for the Temporal UI's event history (`fhir: final report v2`)."""
    if kind == d.MILESTONE_REPORT and state.report is not None:
        via = f" ({_REPORT_VIA[lane]})" if lane in _REPORT_VIA else ""
        return f"{lane}: {state.report.status.value} report v{state.report.version}{via}"
    if kind == d.MILESTONE_ACQUISITION:
        uid = state.study.study_instance_uid or "study"
        return f"{lane}: study {uid} ({instances} instances)"
    return f"{lane}: sync {'+'.join(kinds) or 'order'}"


def unmatched_summary(kind: str, key: str) -> str:
    return f"unmatched {kind}{SEP}{key}"


def who(action: OperatorAction) -> str:
    """The actor as recorded: the authenticated name (and the CLI's OS user when it said so), else
    where the action came from: `api`, `radflow CLI, OS user bob`, or the Temporal UI."""
    if action.actor:
        return action.actor + (f" ({action.via})" if action.via and action.via != "api" else "")
    return f"{action.via or d.UI_ORIGIN} (unauthenticated)"


def parse_operator_action(value: object) -> tuple[OperatorAction | None, str]:
    """Read an operator action typed by a human: (action, "") or (None, one-line refusal)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, dict):
        return None, f"refused: expected a JSON object like {d.OPERATOR_EXAMPLE}, got {_short(value)}"
    unknown = sorted(set(value) - set(OperatorAction.model_fields))
    if unknown:
        return None, (f"refused: unknown field {', '.join(repr(u) for u in unknown)} "
                      f"(fields: action, lane, note) e.g. {d.OPERATOR_EXAMPLE}")
    try:
        return OperatorAction.model_validate(value), ""
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        return None, f"refused: {where}: {first.get('msg', 'invalid')} e.g. {d.OPERATOR_EXAMPLE}"


def check_operator_action(action: OperatorAction, lanes: list[str], waiting: list[str]) -> tuple[str, str]:
    """("", "") when the action applies now, else (error type, one-line refusal)."""
    allowed = "|".join(d.OPERATOR_ACTIONS)
    if action.action not in d.OPERATOR_ACTIONS:
        return d.ErrorType.OPERATOR_REFUSED, f"refused: unknown operator action {action.action!r} (use {allowed})"
    if action.action in d.OPERATOR_NOTE_REQUIRED and not action.note.strip():
        return d.ErrorType.OPERATOR_REFUSED, (f"refused: {action.action} needs a note saying why "
                                              f"(e.g. {{\"action\": \"{action.action}\", \"note\": \"sent by fax\"}})")
    if action.lane and action.lane not in lanes:
        return d.ErrorType.OPERATOR_REFUSED, (f"refused: unknown lane {action.lane!r}: this order's lanes are "
                                              f"{', '.join(lanes) or 'none'}")
    targets = [action.lane] if action.lane else lanes
    if not any(t in waiting for t in targets):
        which = f"lane {action.lane!r}" if action.lane else "the order"
        return d.ErrorType.NO_ATTENTION_PENDING, f"refused: {which} is not waiting for an operator (not NEEDS_ATTENTION)"
    return "", ""


def current_details(state: OrderState, lane_text: dict[str, str], *, last_operator: str = "",
                    last_refusal: str = "") -> str:
    """Status, each lane, and for a lane waiting for an operator exactly how to act (markdown)."""
    acc = state.order.accession
    lines = [f"**Status: {state.status.value}**" + (f"{SEP}overdue: {', '.join(f.value for f in state.overdue)}"
                                                    if state.overdue else "")]
    waiting = [n for n, lane in state.lanes.items() if lane.attention is not None]
    for name in waiting:
        att = state.lanes[name].attention
        assert att is not None
        lines.append(f"**Needs attention: {name}**: {att.reason} (since {_minute(att.since)})")
        lines.append(
            f"To act: *Send Update* `{d.OPERATOR_UPDATE}` (or *Send Signal* `{d.OPERATOR_SIGNAL}`) with "
            f"`{{\"action\": \"retry\", \"lane\": \"{name}\"}}` or "
            f"`{{\"action\": \"skip\", \"lane\": \"{name}\", \"note\": \"why\"}}`; "
            f"CLI `radflow orders retry {acc} --lane {name}`; API `POST /orders/{acc}/retry` `{{\"lane\": \"{name}\"}}`"
        )
    if lane_text:
        lines.append("Lanes: " + "; ".join(f"{n}: {t}" for n, t in lane_text.items()))
    if last_operator:
        lines.append(f"Last operator action: {last_operator}")
    if last_refusal:
        lines.append(f"Last refused operator action: {last_refusal}")
    return "\n\n".join(lines)


def _minute(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
