"""TCP_NODELAY for pynetdicom associations.

With Nagle on, every small DIMSE message waits for the peer's delayed ACK (~40-88 ms
measured here). pynetdicom exposes no socket option, so an EVT_CONN_OPEN handler sets
it on the association's socket: for acceptors right after accept, for requestors right
after connect, in both cases before the first PDU.
"""

from __future__ import annotations

import logging
import socket

from pynetdicom import evt
from pynetdicom.events import Event

log = logging.getLogger("radflow.dicom")


def set_nodelay(event: Event) -> None:
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as err:  # e.g. a closed socket: the association fails on its own
        log.debug("TCP_NODELAY not set: %s", err)


NODELAY_HANDLER = (evt.EVT_CONN_OPEN, set_nodelay)
