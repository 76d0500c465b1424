"""Payloads of the unmatched-item workflow: something that arrived for no known order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class UnmatchedStart(BaseModel):
    kind: str  # domain.definitions.UnmatchedKind
    key: str  # StudyInstanceUID, MPPS SOP Instance UID, ...
    carried: UnmatchedItem | None = None  # continue-as-new


class UnmatchedNote(BaseModel):
    """What the gateway knows now; later notes replace the keys they carry."""

    details: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""  # why it is unmatched ("no order with accession X", "order X is cancelled")


class ResolveUnmatched(BaseModel):
    accession: str = ""  # "" = dismissed by the operator without linking
    note: str = ""


class UnmatchedItem(BaseModel):
    kind: str
    key: str
    details: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""
    first_seen: datetime
    last_seen: datetime
    notes: int = 0  # how many times a gateway reported it
    resolved_at: datetime | None = None
    linked_accession: str = ""
    resolution_note: str = ""

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


UnmatchedStart.model_rebuild()
