"""UIDs radflow derives instead of storing.

A worklist item must offer the same Study Instance UID on every query, and the MPPS and
the images must carry it back, so an order that arrived without one gets a UID derived
from its accession: UUID-derived (PS3.5 B.2, root 2.25) and stable without any storage.
"""

from __future__ import annotations

import uuid

# Fixed forever: changing it would change the Study UID of every order already on a worklist.
_STUDY_NAMESPACE = uuid.UUID("6f1c2a3e-7d4b-5c8e-9a0f-2b1d3c4e5f60")


def study_uid_for_accession(accession: str) -> str:
    return f"2.25.{uuid.uuid5(_STUDY_NAMESPACE, 'study:' + accession).int}"


def order_study_uid(accession: str, given: str = "") -> str:
    """The order's own Study UID when it brought one, else the derived one."""
    return given or study_uid_for_accession(accession)
