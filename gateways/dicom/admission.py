"""Per-calling-AE association limit, decided when the A-ASSOCIATE-RQ arrives.

pynetdicom has one global limit (`maximum_associations`): a single peer that opens
associations and leaves them idle can take every slot and lock real modalities out.
This caps how many associations one calling AE title may hold at once, so the others
keep their share. An association over the cap gets A-ASSOCIATE-RJ "rejected transient,
service user, no reason given": the peer may retry later; what it already holds is
untouched.

The count is taken from the AE's live association threads (threads end when an
association is released, aborted or times out, so nothing has to be decremented), under
a lock so two simultaneous requests from one AE cannot both take the last place.
"""

from __future__ import annotations

import logging
import threading

from pynetdicom.events import Event

log = logging.getLogger("radflow.dicom")

_ADMITTED = "_radflow_calling_ae"  # attribute set on admitted acceptor associations

REJECTED_TRANSIENT, SERVICE_USER, NO_REASON = 0x02, 0x01, 0x01


class PerAeLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()

    def on_requested(self, event: Event) -> None:
        """EVT_REQUESTED handler: admit, or reject before negotiation starts."""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        with self._lock:
            held = sum(1 for a in assoc.ae.active_associations
                       if a is not assoc and a.is_acceptor and getattr(a, _ADMITTED, None) == calling)
            if held < self.limit:
                setattr(assoc, _ADMITTED, calling)
                return
        log.warning("association rejected: per-AE limit reached",
                    extra={"calling_ae": calling, "held": held, "limit": self.limit,
                           "peer": f"{assoc.requestor.address}:{assoc.requestor.port}"})
        assoc.acse.send_reject(REJECTED_TRANSIENT, SERVICE_USER, NO_REASON)
        # As pynetdicom does for its own rejections: wait (up to ARTIM) until the peer has read
        # the A-ASSOCIATE-RJ and closed, so the socket is not shut under the PDU.
        assoc.kill()
