"""Append-only audit trail of the API: one JSON line per PHI read or change (and per refusal).

Who (principal name, roles, how authenticated), what (method, route, path, query), which
order (accession or FHIR id), when (UTC), outcome (HTTP status) and the source address
(the TCP peer: behind a proxy, the proxy). The file is opened O_APPEND and created 0600;
each line is a single write(2), so concurrent writers (several API processes) do not interleave.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from api.auth import Principal
from radflow.private_files import private_dir

log = logging.getLogger("radflow.api.audit")


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, *, principal: Principal | None, method: str, path: str, route: str | None,
               params: dict[str, str], status: int, source: str, query: str = "") -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": principal.name if principal else None,
            "roles": sorted(r.value for r in principal.roles) if principal else [],
            "auth": principal.method if principal else None,
            "action": f"{method} {route or path}",
            "path": path,
            "order": params.get("accession") or params.get("id") or None,
            "outcome": status,
            "source": source,
        }
        if query:
            entry["query"] = query
        try:
            os.write(self._fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode())
        except OSError as err:
            # The answer has gone out already; say loudly that the trail has a hole.
            log.error("audit record not written", extra={"audit_path": str(self.path), "error": err.strerror})

    def close(self) -> None:
        os.close(self._fd)
