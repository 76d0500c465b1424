"""The audit trail: append-only JSON lines, durable before anyone relies on them.

One line per audited act (a PHI read, a change, a refusal, a payload decoded for the Temporal
UI). `append()` returns only after the line is written with a single write(2) on an O_APPEND
descriptor (concurrent writers, even in other processes, do not interleave) and fdatasync'd:
the line is the record, and the FHIR AuditEvent outbox (radflow/infra/audit_outbox.py) delivers
from it. A failed write raises `AuditUnavailable`; the caller decides what that costs
(the API refuses the request: docs/security.md "Audit").

Other components audit through `record()` (e.g. the codec server: every decode for the UI is
a PHI read): `audit_trail(settings).record(who=..., action=..., outcome=..., ...)`.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radflow.infra.private_files import private_dir

# What an act did, as a FHIR restful interaction (BALP maps it to AuditEvent.subtype/action).
READ, SEARCH, CREATE, UPDATE, OPERATION = "read", "search-type", "create", "update", "operation"
INTERACTIONS = frozenset({READ, SEARCH, CREATE, UPDATE, OPERATION})
ATTEMPT = "attempt"  # a change about to be applied (its outcome line follows)


class AuditUnavailable(OSError):
    """The audit line could not be written: the act must not proceed unrecorded."""


class AuditTrail:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        private_dir(self.path.parent)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_append(self, listener: Callable[[], None]) -> None:
        """Called (in the writer's thread) after each durable line: the outbox wakes up."""
        self._listeners.append(listener)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"id": uuid.uuid4().hex, "time": now_iso(), **entry}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            with self._lock:
                written = os.write(self._fd, line)
                if written != len(line):
                    raise OSError(28, f"short write ({written} of {len(line)} bytes)")
                if self.fsync:
                    os.fdatasync(self._fd)
        except OSError as err:
            raise AuditUnavailable(err.errno or 5, f"audit trail {self.path} not writable: {err.strerror or err}") from err
        for listener in self._listeners:
            listener()
        return entry

    def record(self, *, who: str | None, action: str, outcome: int, interaction: str = READ,
               roles: Iterable[str] = (), auth: str | None = None, source: str = "", order: str | None = None,
               patient: dict[str, str] | None = None, **detail: Any) -> dict[str, Any]:
        """Append one act. `outcome` is an HTTP-like status (2xx success, 4xx refused, 5xx failed);
        `patient` is an identifier ({"system", "value"}), never a name; `detail` adds plain fields."""
        if interaction not in INTERACTIONS:
            raise ValueError(f"unknown interaction {interaction!r}")
        entry: dict[str, Any] = {"who": who, "roles": sorted(roles), "auth": auth, "action": action,
                                 "interaction": interaction, "order": order or None, "outcome": outcome,
                                 "source": source}
        if patient:
            entry["patient"] = {"system": patient.get("system", ""), "value": patient["value"]}
        entry.update({k: v for k, v in detail.items() if v not in (None, "")})
        return self.append(entry)

    def close(self) -> None:
        os.close(self._fd)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


_TRAILS: dict[Path, AuditTrail] = {}
_TRAILS_LOCK = threading.Lock()


def audit_trail(settings) -> AuditTrail:
    """The process' trail for the configured path (one descriptor per path per process)."""
    path = Path(settings.audit_log_path()).resolve()
    with _TRAILS_LOCK:
        if path not in _TRAILS:
            _TRAILS[path] = AuditTrail(path)
        return _TRAILS[path]
