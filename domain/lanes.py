"""What a delivery lane has to do next, as pure functions of the order state (no I/O).

A lane belongs to one consumer (worklist, fhir, hl7, archive). It never queues work: when
it wakes it compares its marks (`LaneState`) with the order and sends the *current*
snapshot once, so changes that arrived while it was busy or waiting for an operator
coalesce. Report deliveries are per report version; acquisition per instance count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from radflow.domain import definitions as d
from radflow.domain.definitions import OrderStatus
from radflow.domain.order import LaneState, OrderPolicy, OrderState
from radflow.domain.studies import received_instances
from radflow.domain.transitions import ready_for_acquisition

S = OrderStatus
_ACQUIRED_OR_LATER = {S.ACQUIRED, S.REPORTED, S.DELIVERED, S.COMPLETED}


@dataclass(frozen=True)
class Work:
    kind: str  # d.MILESTONE_SYNC | d.MILESTONE_REPORT | d.MILESTONE_ACQUISITION
    activity: str
    mark: int  # the mirror version / report version / instance count this work brings the lane to


def mirror_key(state: OrderState) -> str:
    """Fingerprint of what the sync consumers show; a new study count before acquisition is not part of it."""
    s = state
    confirmed = s.study.archive_confirmed
    view = "|".join((
        s.status.value,
        s.order.model_dump_json(),
        str(s.report.version if s.report else 0),
        str(confirmed),
        str(s.study.instance_count if confirmed else 0),
        # Further studies of the order: mirrored once stable.
        *[f"{x.study_instance_uid}:{x.instance_count}" for x in s.extra_studies if x.stable],
    ))
    return hashlib.sha256(view.encode()).hexdigest()[:16]


def acquisition_wanted(state: OrderState) -> bool:
    """Complete on radflow's side, or instances that arrived after ACQUIRED (the archive confirms the new count)."""
    if ready_for_acquisition(state)[0]:
        return True
    # A further study is archived (and counted) once it is stable, not image by image.
    return (state.status in _ACQUIRED_OR_LATER and received_instances(state) > 0
            and all(x.stable for x in state.extra_studies))


def pending_work(state: OrderState, lane_name: str, policy: OrderPolicy) -> list[Work]:
    """Everything the lane still owes the order, in the order it is sent: the report first (a
    report delivery writes the resources it needs itself), then the mirror, then acquisition."""
    lane = state.lanes.get(lane_name) or LaneState()
    out: list[Work] = []
    report = state.report
    if (lane_name in policy.report_consumers and lane_name in d.REPORT_DELIVERY_ACTIVITIES and report is not None
            and lane.report_version < report.version):
        out.append(Work(d.MILESTONE_REPORT, d.REPORT_DELIVERY_ACTIVITIES[lane_name], report.version))
    if lane_name in policy.sync_consumers and lane_name in d.SYNC_ACTIVITIES and lane.mirror_version < state.mirror_version:
        out.append(Work(d.MILESTONE_SYNC, d.SYNC_ACTIVITIES[lane_name], state.mirror_version))
    count = received_instances(state)  # over every study of the order
    if (lane_name in policy.acquisition_consumers and lane_name in d.ACQUISITION_ACTIVITIES
            and lane.acquired_count != count and acquisition_wanted(state)):
        out.append(Work(d.MILESTONE_ACQUISITION, d.ACQUISITION_ACTIVITIES[lane_name], count))
    return out


def mark_done(state: OrderState, lane_name: str, work: Work, outcome: str) -> None:
    """Record a finished (or skipped) piece of work on the lane and in `deliveries` (API view)."""
    lane = state.lanes.setdefault(lane_name, LaneState())
    lane.last = f"{work.kind} {outcome}"
    if work.kind == d.MILESTONE_SYNC:
        lane.mirror_version = max(lane.mirror_version, work.mark)
    elif work.kind == d.MILESTONE_REPORT:
        lane.report_version = max(lane.report_version, work.mark)
        state.deliveries[lane_name] = f"v{work.mark}:{outcome}"
    else:
        lane.acquired_count = work.mark
        state.deliveries[f"acquisition:{lane_name}"] = f"n{work.mark}:{outcome}"


def acquisition_settled(state: OrderState, policy: OrderPolicy) -> tuple[bool, str]:
    """Every acquisition lane confirmed the current count (delivered, not configured or skipped)."""
    consumers = [c for c in policy.acquisition_consumers if c in d.ACQUISITION_ACTIVITIES]
    if not consumers:
        return True, "no archive configured"
    prefix = f"n{received_instances(state)}:"
    results = {c: state.deliveries.get(f"acquisition:{c}", "") for c in consumers}
    if not all(r.startswith(prefix) for r in results.values()):
        return False, ""
    return True, ", ".join(f"{c}={r.split(':', 1)[1]}" for c, r in results.items())


def report_verdict(state: OrderState, policy: OrderPolicy) -> tuple[OrderStatus | None, str]:
    """DELIVERED once every report lane finished the current final version and one acknowledged it;
    COMPLETED when they all finished but none acknowledged (none configured, all skipped)."""
    report = state.report
    if report is None or report.status == d.ReportStatus.PRELIMINARY or state.status != S.REPORTED:
        return None, ""
    prefix = f"v{report.version}:"
    consumers = [c for c in policy.report_consumers if c in d.REPORT_DELIVERY_ACTIVITIES]
    outcomes = {c: state.deliveries.get(c, "") for c in consumers}
    if not all(o.startswith(prefix) for o in outcomes.values()):
        return None, ""
    summary = ", ".join(f"{c}={o.split(':', 1)[1]}" for c, o in outcomes.items()) or "no destination configured"
    acknowledged = any(o == f"{prefix}delivered" for o in outcomes.values())
    return (S.DELIVERED if acknowledged else S.COMPLETED), summary
