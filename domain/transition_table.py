"""The order state machine as one declarative table: status x event -> outcome.

For every clinical status and every event kind the table says what a typical event of
that kind does: move to a status, apply without a status change, change nothing (a
resend), note it on the timeline, or refuse it. `domain.transitions.apply_event` takes every
"refused", "no change" and "noted" cell from here (`rule_for`) before any handler runs; the
handlers only do the data side of "move" and "applied" cells (and may still refuse or find
nothing changed for data reasons: an empty report, a mismatching study, a resend).
`tests/domain/test_transition_table.py` runs every combination through `apply_event` and
checks it agrees with this table, and docs/transitions.md is generated from it:

    python -m radflow.domain.transition_table --write
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from radflow.domain.definitions import OrderStatus
from radflow.domain.order import EventKind

S = OrderStatus
E = EventKind

# The statuses an order can be in (v2; NEEDS_ATTENTION is only v1's overlay).
STATUSES = [S.ORDERED, S.SCHEDULED, S.IN_PROGRESS, S.ACQUIRED, S.REPORTED, S.DELIVERED, S.COMPLETED,
            S.CANCELLED, S.DISCONTINUED, S.EXPIRED, S.UNREPORTED]
OPEN = {S.ORDERED, S.SCHEDULED}
STARTED = OPEN | {S.IN_PROGRESS}
PAST_ACQUISITION = {S.ACQUIRED, S.REPORTED, S.DELIVERED, S.COMPLETED}
CLOSED = {S.CANCELLED, S.DISCONTINUED, S.EXPIRED, S.UNREPORTED}


@dataclass(frozen=True)
class Rule:
    kind: str  # "move" | "apply" | "same" | "note" | "refuse"
    target: OrderStatus | None = None

    def text(self) -> str:
        return {"move": f"→ {self.target.value if self.target else ''}", "apply": "applied",
                "same": "no change", "note": "noted", "refuse": "refused"}[self.kind]


def move(target: OrderStatus) -> Rule:
    return Rule("move", target)


APPLY, SAME, NOTE, REFUSE = Rule("apply"), Rule("same"), Rule("note"), Rule("refuse")


def _row(*parts: tuple[set[OrderStatus], Rule], default: Rule = REFUSE) -> dict[OrderStatus, Rule]:
    row = {s: default for s in STATUSES}
    for statuses, rule in parts:
        row.update({s: rule for s in statuses})
    return row


# What each event does, per status (the typical event of its kind; see EXAMPLES in the test).
TABLE: dict[EventKind, dict[OrderStatus, Rule]] = {
    E.NEW_ORDER: _row(default=SAME),  # a resent NW: acknowledged, nothing changes
    E.ORDER_CHANGED: _row((OPEN, move(S.SCHEDULED)), ({S.IN_PROGRESS}, APPLY)),
    E.SCHEDULE: _row((OPEN, move(S.SCHEDULED))),
    E.STATUS_CHANGED: _row((OPEN, move(S.IN_PROGRESS)), ({S.IN_PROGRESS}, SAME)),  # ORC-5 "IP"
    E.CANCEL: _row((OPEN, move(S.CANCELLED)), ({S.CANCELLED}, SAME)),
    E.DISCONTINUE: _row((STARTED, move(S.DISCONTINUED)), ({S.DISCONTINUED}, SAME)),
    E.PATIENT_UPDATED: _row((set(STATUSES) - CLOSED, APPLY)),
    E.PATIENT_MERGED: _row((set(STATUSES) - CLOSED, APPLY)),
    E.REPORT: _row((set(STATUSES) - CLOSED, move(S.REPORTED))),  # a final report
    E.PROCEDURE_STARTED: _row((OPEN, move(S.IN_PROGRESS)), ({S.IN_PROGRESS}, SAME), (PAST_ACQUISITION, NOTE)),
    E.PROCEDURE_COMPLETED: _row((STARTED, move(S.IN_PROGRESS)), (PAST_ACQUISITION, NOTE)),
    E.PROCEDURE_DISCONTINUED: _row((STARTED, move(S.DISCONTINUED)), ({S.DISCONTINUED}, SAME)),
    E.IMAGES_ARRIVING: _row((OPEN, move(S.IN_PROGRESS)), ({S.IN_PROGRESS} | PAST_ACQUISITION, APPLY)),
    E.STUDY_STABLE: _row((OPEN, move(S.IN_PROGRESS)), ({S.IN_PROGRESS} | PAST_ACQUISITION, APPLY)),
    E.STUDY_LINKED: _row((OPEN, move(S.IN_PROGRESS)), ({S.IN_PROGRESS} | PAST_ACQUISITION, APPLY)),
    E.ACQUISITION_CONFIRMED: _row((STARTED, move(S.ACQUIRED))),
}


# Kinds whose outcome depends on the event's data, not on the status: ORC-5 names the target
# status of an SC, so its handler decides (and goes through `rule_for` for CA/DC targets).
DATA_DRIVEN = frozenset({E.STATUS_CHANGED})


def rule_for(kind: EventKind, status: OrderStatus) -> Rule | None:
    """The table's decision for `apply_event`; None where the event's handler decides.

    A status outside the table (v1's NEEDS_ATTENTION overlay with nothing under it) is refused.
    """
    if kind in DATA_DRIVEN:
        return None
    return TABLE[kind].get(status, REFUSE)


def markdown() -> str:
    lines = ["# Order transitions", "",
             "Generated from `domain/transition_table.py` (`python -m radflow.domain.transition_table --write`);",
             "`domain/transitions.py` takes every refused / no change / noted cell from it before a handler",
             "runs (ORC-5 status changes excepted: their target decides), and",
             "`tests/domain/test_transition_table.py` checks every cell through `apply_event`.",
             "A cell is what the typical event of that kind does in that status: `→ X` moves to X,",
             "`applied` changes data but not the status, `no change` is a resend, `noted` only adds a",
             "timeline note, `refused` is an exception (HL7 AE, HTTP 409, DICOM failure status).",
             "Lifecycle moves made by the workflow itself (DELIVERED/COMPLETED after the report lanes,",
             "EXPIRED/UNREPORTED by the closure policies) are in docs/workflow.md.", "",
             "| event | " + " | ".join(s.value for s in STATUSES) + " |",
             "|---|" + "---|" * len(STATUSES)]
    for kind, row in TABLE.items():
        lines.append(f"| {kind.value} | " + " | ".join(row[s].text() for s in STATUSES) + " |")
    return "\n".join(lines) + "\n"


DOC = Path(__file__).resolve().parents[1] / "docs" / "transitions.md"

if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(markdown())
    else:
        print(markdown())
