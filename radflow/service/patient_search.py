"""The PatientID search attribute as a keyed hash of the MRN (HMAC-SHA256).

Search attributes are stored and indexed in clear by Temporal (and are not covered by the
payload codec), so an order carries `p1:<hex HMAC of the MRN>` instead of the MRN. Whoever
holds the key (OrderService, from RADFLOW_SEARCH_HMAC_KEY_FILE) turns an MRN into the same
token to search; without the key the token reveals nothing, not even by trying MRNs.

Orders started before the key was configured carry the MRN in clear; while
`search_clear_mrn` is on, searches ask for both forms (docs/security.md "Existing orders").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from radflow.infra.secret_files import KeyFileError, create_private, read_private

TOKEN_PREFIX = "p1:"  # versioned: a new scheme gets a new prefix


class MrnHasher:
    def __init__(self, key: bytes, *, include_clear: bool = True) -> None:
        if len(key) < 32:
            raise ValueError("the search HMAC key must be at least 32 bytes")
        self._key = key
        self.include_clear = include_clear

    def token(self, mrn: str) -> str:
        digest = hmac.new(self._key, mrn.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return TOKEN_PREFIX + digest

    def search_terms(self, mrn: str) -> list[str]:
        """The PatientID values an order of this MRN may carry (the token; the MRN too while in transition)."""
        return [self.token(mrn), mrn] if self.include_clear else [self.token(mrn)]


def is_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


def load_hmac_key(path: Path | str) -> bytes:
    text = read_private(path, "search HMAC key file")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(lines) != 1:
        raise KeyFileError(f"search HMAC key file {path}: expected one line of base64 (32+ bytes)")
    try:
        key = base64.b64decode(lines[0], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"search HMAC key file {path}: not base64") from None
    if len(key) < 32:
        raise KeyFileError(f"search HMAC key file {path}: the key must be at least 32 bytes, got {len(key)}")
    return key


def ensure_hmac_key_file(path: Path | str) -> bool:
    header = "# radflow PatientID search HMAC key (base64, 32 bytes); changing it needs a re-index\n"
    return create_private(path, header + base64.b64encode(os.urandom(32)).decode() + "\n")
