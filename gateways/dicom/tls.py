"""DICOM TLS for the gateway's listener: the handshake runs in the association's thread, bounded.

pynetdicom wraps each accepted socket with `ssl_context.wrap_socket(...)` in its one accept
thread; with the handshake done there, a peer that connects and sends nothing (or a slow
one) would stop every other modality from connecting. The context below defers the
handshake, and an EVT_CONN_OPEN handler (run in the new association's own thread, before
any PDU is read) performs it with a timeout. A failed handshake (plain DICOM on the TLS
port, an untrusted or missing client certificate, a silent peer) closes that connection
only, with a WARNING log.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

from pynetdicom.events import Event

from radflow.infra.tls import peer_subject

log = logging.getLogger("radflow.dicom")


class DeferredHandshakeContext(ssl.SSLContext):
    """A server context whose wrap_socket returns at once; the handshake comes later (see module doc)."""

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                    *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect and not server_side, *args, **kwargs)


class TlsHandshake:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def on_conn_open(self, event: Event) -> None:
        sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
        if not isinstance(sock, ssl.SSLSocket) or not event.assoc.is_acceptor:
            return
        address = getattr(event, "address", None)
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        previous = sock.gettimeout()
        try:
            sock.settimeout(self.timeout_s)
            sock.do_handshake()
            sock.settimeout(previous)
        except (OSError, ValueError) as err:  # ssl.SSLError, socket timeout, reset by peer
            reason = "no handshake within the timeout" if isinstance(err, TimeoutError) else str(err) or type(err).__name__
            log.warning("DICOM TLS handshake failed: %s", reason, extra={"peer": peer})
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the association reads EOF and ends (no PDU was exchanged)
            except OSError:
                pass
            return
        subject = peer_subject(sock)
        if subject:
            log.info("DICOM TLS client certificate %s", subject, extra={"peer": peer})
