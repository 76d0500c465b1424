"""The C-FIND handler fed hostile identifiers as they arrive (encoded bytes, decoded lazily by pynetdicom):
whatever the bytes, it ends with exactly one final status and never raises (hypothesis, bounded)."""

from __future__ import annotations

import tempfile
from io import BytesIO
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.mwl import entry_from_state
from radflow.domain.order import OrderState
from radflow.gateways.dicom.worklist import WorklistService
from radflow.gateways.dicom.worklist_store import WorklistStore
from tests.factories import make_order

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the odd values on purpose

PENDING = {0xFF00, 0xFF01}
_DIR = Path(tempfile.mkdtemp(prefix="mwl-fuzz-"))
STORE = WorklistStore(_DIR / "worklist.db")
T0 = datetime(2030, 1, 1, tzinfo=UTC)
STORE.apply_many(entry_from_state(OrderState(order=make_order(f"FZ{i}", mrn=f"M{i}"), status=OrderStatus.SCHEDULED,
                                             created_at=T0, updated_at=T0)) for i in range(20))
SERVICE = WorklistService(STORE, budget_s=5.0)


class Event:
    """What the handler reads from a pynetdicom C-FIND event; the identifier decodes on access, like pynetdicom's."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.assoc = SimpleNamespace(requestor=SimpleNamespace(ae_title="FUZZER"))
        self.is_cancelled = False

    @property
    def identifier(self) -> Dataset:
        return decode(BytesIO(self.raw), False, True)


def answers(raw: bytes) -> list[int]:
    """The statuses the peer gets: a generator that ends after pendings (or none) is pynetdicom's final Success."""
    out = []
    for status, _ in SERVICE.on_find(Event(raw)):  # type: ignore[arg-type]
        out.append(int(status) if isinstance(status, int) else int(status.Status))
    if not out or out[-1] in PENDING:
        out.append(0x0000)
    return out


def check(statuses: list[int]) -> None:
    *pending, final = statuses
    assert all(s in PENDING for s in pending) and final not in PENDING, statuses


def valid_identifier() -> bytes:
    ds = Dataset()
    ds.PatientName = "*"
    ds.AccessionNumber = ""
    sps = Dataset()
    sps.Modality = "CT"
    sps.ScheduledProcedureStepStartDate = "20300101-"
    ds.ScheduledProcedureStepSequence = [sps]
    return encode(ds, False, True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_identifier_bytes_get_one_final_status(raw: bytes) -> None:
    check(answers(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_identifiers_get_one_final_status(data: st.DataObject) -> None:
    raw = bytearray(valid_identifier())
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    check(answers(bytes(raw)))


def test_the_unmutated_identifier_matches_every_row() -> None:
    statuses = answers(valid_identifier())
    assert statuses == [0xFF00] * 20 + [0x0000]
