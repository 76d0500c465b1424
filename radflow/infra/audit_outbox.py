"""Delivers the audit trail to a FHIR server as AuditEvents: the JSON-lines file is the outbox.

The trail's lines are durable before the act they record goes ahead (radflow/infra/audit_trail.py),
so nothing here can lose a record: a cursor file (`<trail>.cursor`, the byte offset of the
next line to deliver) advances only after the server stored the event. Each event is a
`PUT AuditEvent/<line id>`, so a delivery retried after a lost answer stores it once.

- Server down, 5xx, 401/403/429, timeouts: the same line is retried with exponential backoff
  (initial..max); nothing later overtakes it, so the repository receives the trail in order.
- 400/422 (the server refuses the content: it will never take it): the line goes to
  `<trail>.rejected` with the reason, is logged as an error, and the cursor moves on.
- `attempt` lines (a change about to be applied) are not events: their outcome line is.

Several API processes may share one trail: an exclusive lock on `<trail>.outbox.lock` makes
one of them the deliverer; the others wait for the lock. The API's request path only appends
and wakes the loop: delivery never blocks or fails a user's request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path
import httpx

from radflow.domain.fhir.audit_event import audit_event
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.infra.audit_trail import ATTEMPT
from radflow.infra.private_files import private_file

log = logging.getLogger("radflow.audit.outbox")

FHIR_JSON = "application/fhir+json"
_REJECTED = {400, 422}
_BATCH_BYTES = 1 << 20


class DeliveryFailed(Exception):
    """The server did not store the event; a retry may."""


class AuditOutbox:
    def __init__(self, trail_path: Path, base_url: str, mapping: FhirMappingConfig, *, token: str = "",
                 timeout_s: float = 10.0, poll_s: float = 5.0, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, site: str = "radflow") -> None:
        self.trail = Path(trail_path)
        self.cursor_path = self.trail.with_name(self.trail.name + ".cursor")
        self.rejected_path = self.trail.with_name(self.trail.name + ".rejected")
        self.lock_path = self.trail.with_name(self.trail.name + ".outbox.lock")
        self.mapping, self.site = mapping, site
        self.poll_s, self.backoff_initial_s, self.backoff_max_s = poll_s, backoff_initial_s, backoff_max_s
        headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0

    @classmethod
    def from_settings(cls, settings) -> AuditOutbox | None:
        """The outbox of the configured FHIR server; None when none is set (JSON lines only)."""
        base = settings.audit_fhir_base_url or settings.fhir_base_url
        if not base or base == "none":
            return None
        return cls(settings.audit_log_path(), base, settings.fhir_mapping(),
                   token=settings.fhir_token, timeout_s=settings.fhir_timeout_s,
                   poll_s=settings.audit_fhir_poll_s, backoff_max_s=settings.audit_fhir_backoff_max_s)

    # ---------------------------------------------------------------- wake-up
    def wake(self) -> None:
        """Thread-safe: a line was appended (the trail's listener)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---------------------------------------------------------------- cursor
    def cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _save_cursor(self, offset: int) -> None:
        tmp = self.cursor_path.with_name(self.cursor_path.name + ".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.cursor_path)

    def _pending(self, offset: int) -> list[tuple[int, bytes]]:
        """Complete lines after `offset`, each with the offset just past it."""
        try:
            with open(self.trail, "rb") as f:
                f.seek(offset)
                chunk = f.read(_BATCH_BYTES)
        except FileNotFoundError:
            return []
        out, pos = [], offset
        for line in chunk.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # being written; next round
            pos += len(line)
            out.append((pos, line))
        return out

    # ---------------------------------------------------------------- delivery
    async def deliver_pending(self) -> int:
        """Deliver every complete line after the cursor; DeliveryFailed stops at the first failure."""
        sent = 0
        while batch := await asyncio.to_thread(self._pending, self.cursor()):
            for end, raw in batch:
                await self._deliver_line(raw)
                await asyncio.to_thread(self._save_cursor, end)
                sent += 1
        return sent

    async def _deliver_line(self, raw: bytes) -> None:
        try:
            entry = json.loads(raw)
            if entry.get("phase") == ATTEMPT:
                return
            event = audit_event(entry, self.mapping, self.site)
        except (ValueError, KeyError, TypeError) as err:
            await asyncio.to_thread(self._reject, raw, f"not an audit line: {err}")
            return
        try:
            resp = await self._http.put(f"AuditEvent/{event['id']}", content=json.dumps(event))
        except httpx.HTTPError as err:
            raise DeliveryFailed(f"{type(err).__name__}: {err}") from err
        if resp.status_code in _REJECTED:
            await asyncio.to_thread(self._reject, raw, f"HTTP {resp.status_code}: {resp.text[:500]}")
            return
        if resp.status_code >= 300:
            raise DeliveryFailed(f"HTTP {resp.status_code}: {resp.text[:200]}")
        self.delivered += 1

    def _reject(self, raw: bytes, reason: str) -> None:
        log.error("audit line refused by the FHIR server; kept in the rejected file", extra={
            "rejected_path": str(self.rejected_path), "reason": reason[:300]})
        private_file(self.rejected_path)
        with open(self.rejected_path, "ab") as f:
            f.write(json.dumps({"reason": reason, "line": raw.decode("utf-8", "replace").rstrip("\n")}).encode() + b"\n")

    # ---------------------------------------------------------------- the loop
    async def run(self) -> None:
        """Deliver for as long as the process lives (cancel to stop)."""
        self._loop = asyncio.get_running_loop()
        private_file(self.lock_path)
        lock_fd = os.open(self.lock_path, os.O_RDWR)
        try:
            while not await asyncio.to_thread(_try_lock, lock_fd):
                await asyncio.sleep(self.poll_s)  # another process delivers this trail
            backoff = self.backoff_initial_s
            while True:
                self._wake.clear()  # before reading: a line appended meanwhile wakes the next wait
                try:
                    await self.deliver_pending()
                    backoff = self.backoff_initial_s
                except DeliveryFailed as err:
                    log.warning("audit delivery failed, retrying", extra={"error": str(err)[:300], "retry_in_s": backoff})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
        finally:
            os.close(lock_fd)  # releases the lock
            await self._http.aclose()


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
