"""Which worklist and MPPS stores a process uses: SQLite files (default) or PostgreSQL.

RADFLOW_READ_MODEL_URL empty: the SQLite files under the data dir (one host; `radflow dev`,
unchanged). `postgresql://user:pass@host/db`: one shared database for every gateway and
worker (several hosts, issue 12). Both implement the protocols below; callers never know
which one they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from pydicom.dataset import Dataset

from radflow.domain.dicom.matching import Query
from radflow.domain.dicom.mwl import Item, WorklistEntry
from radflow.gateways.dicom.mpps_store import MppsRecord
from radflow.infra.settings import Settings


class WorklistReadModel(Protocol):
    def apply(self, entry: WorklistEntry) -> bool:
        """Upsert the order's row; False when a newer snapshot is already stored."""
        ...

    def sync(self, entry: WorklistEntry, closed_at: str, attachments: list[str]) -> bool:
        """`apply` and `note_closure` in one transaction (the worker's sync after each order change)."""
        ...

    def apply_many(self, entries: Iterable[WorklistEntry]) -> int: ...

    def hide(self, accession: str) -> None: ...

    def find(self, query: Query, statuses: Iterable[str] = ("SCHEDULED",), limit: int = 0,
             deadline: float | None = None) -> Iterator[Item]: ...

    def get(self, accession: str) -> WorklistEntry | None: ...

    def lookup_accession(self, *, requested_procedure_id: str = "", study_uid: str = "",
                         sps_id: str = "") -> str | None: ...

    def visible_accessions(self) -> list[str]: ...

    def count(self, visible_only: bool = True) -> int: ...

    # Retention (radflow/service/retention.py): closure notes written by the worklist sync, and the purge.
    def note_closure(self, accession: str, closed_at: str, attachments: list[str]) -> None: ...

    def due_for_purge(self, closed_before: str, limit: int = 500) -> list[tuple[str, list[str]]]: ...

    def closed_before(self, closed_before: str, accessions: Iterable[str]) -> set[str]: ...

    def purge(self, accessions: list[str], purged_at: str) -> int: ...


class MppsReadModel(Protocol):
    def get(self, uid: str) -> MppsRecord | None: ...

    def create(self, uid: str, attributes: Dataset, accessions: list[str], calling_ae: str = "") -> bool:
        """False when the instance already exists (the caller answers Duplicate SOP Instance)."""
        ...

    def update(self, uid: str, attributes: Dataset, expected_status: str) -> bool:
        """Store the merged attributes; False if another N-SET changed the status meanwhile."""
        ...

    def unmatched(self) -> list[MppsRecord]: ...

    def purge_closed(self, closed: Callable[[set[str]], set[str]]) -> int:
        """Drop the attributes of instances whose orders all passed retention (radflow/service/retention.py)."""
        ...


def postgres_url(settings: Settings) -> str:
    url = settings.read_model_url.get_secret_value()
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("RADFLOW_READ_MODEL_URL must be a postgresql:// URL (or empty for the SQLite files)")
    return url


def worklist_store(settings: Settings) -> WorklistReadModel:
    if url := postgres_url(settings):
        from radflow.infra.read_model_db import pool
        from radflow.gateways.dicom.pg_worklist_store import PgWorklistStore

        return PgWorklistStore(pool(url, max_size=settings.read_model_pool_max))
    from radflow.gateways.dicom.worklist_store import WorklistStore

    return WorklistStore(settings.mwl_db_path())


def mpps_store(settings: Settings) -> MppsReadModel:
    if url := postgres_url(settings):
        from radflow.infra.read_model_db import pool
        from radflow.gateways.dicom.pg_mpps_store import PgMppsStore

        return PgMppsStore(pool(url, max_size=settings.read_model_pool_max))
    from radflow.gateways.dicom.mpps_store import MppsStore

    return MppsStore(settings.mpps_db_path())


def describe(settings: Settings) -> str:
    """Where the read models live, for banners and logs (never the password)."""
    url = postgres_url(settings)
    if not url:
        return f"worklist {settings.mwl_db_path()}"
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    return f"worklist postgresql {info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
