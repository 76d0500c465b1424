"""Closed orders: telling a resent order message from a new order that reuses an accession.

Senders resend an NW when they missed the ACK, sometimes days later; a RIS may also reuse
an accession by mistake for a new order. A resend carries the same message control id or,
rebuilt by the sender, the same placer order, patient and procedure; anything else is a
different order, refused while the accession belongs to a closed one.
"""

from __future__ import annotations

from radflow.domain.order import OrderData, OrderState


def is_resend(closed: OrderState, incoming: OrderData, control_id: str = "") -> bool:
    if control_id and control_id in closed.seen_control_ids:
        return True
    old = closed.order
    return (
        incoming.placer_number == old.placer_number
        and incoming.placer_system == old.placer_system
        and incoming.patient.mrn in {old.patient.mrn, *(p.mrn for p in closed.previous_patients)}
        and incoming.procedure.code == old.procedure.code
    )
