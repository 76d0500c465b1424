"""IndexWriter's group commit, with a recording `send` in place of Temporal (the writer's own logic).

The end-to-end guarantees (an order is found by its keys as soon as it is acknowledged) are
tested against a real dev server in tests/gateways/test_hl7_gateway_lookups.py and
tests/radflow/test_index_group_commit.py.
"""

from __future__ import annotations

import asyncio

import pytest

from radflow.service.index_writes import IndexWriter


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, dict[str, list[str]]]] = []
        self.release = asyncio.Event()
        self.fail_next: Exception | None = None

    async def send(self, signal: str, bucket: int, entries: dict[str, list[str]]) -> None:
        await self.release.wait()
        self.sent.append((signal, bucket, {k: list(v) for k, v in entries.items()}))
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err


async def test_an_idle_bucket_is_written_at_once() -> None:
    rec = Recorder()
    rec.release.set()
    writer = IndexWriter(rec.send)
    await writer.write("add", 3, {"mrn:1": ["A1"]})
    assert rec.sent == [("add", 3, {"mrn:1": ["A1"]})]


async def test_writes_queued_behind_a_signal_in_flight_go_out_as_one() -> None:
    rec = Recorder()
    writer = IndexWriter(rec.send)
    first = asyncio.create_task(writer.write("add", 1, {"mrn:1": ["A1"]}))
    await asyncio.sleep(0)  # the first signal is in flight (send waits for release)
    rest = [asyncio.create_task(writer.write("add", 1, {f"mrn:{i}": [f"A{i}"], "mrn:1": [f"A{i}"]})) for i in range(2, 6)]
    other_bucket = asyncio.create_task(writer.write("add", 2, {"placer:9": ["A9"]}))
    await asyncio.sleep(0)
    rec.release.set()
    await asyncio.gather(first, *rest, other_bucket)
    bucket_1 = [entries for signal, bucket, entries in rec.sent if bucket == 1]
    assert bucket_1 == [
        {"mrn:1": ["A1"]},
        {"mrn:2": ["A2"], "mrn:1": ["A2", "A3", "A4", "A5"], "mrn:3": ["A3"], "mrn:4": ["A4"], "mrn:5": ["A5"]},
    ]
    assert [b for _, b, _ in rec.sent].count(2) == 1
    assert (writer.writes, writer.signals_sent) == (6, 3)


async def test_an_add_and_a_later_forget_keep_their_order() -> None:
    rec = Recorder()
    writer = IndexWriter(rec.send)
    tasks = [asyncio.create_task(writer.write("add", 0, {"mrn:1": ["A0"]}))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(writer.write("forget", 0, {"mrn:1": ["A1"]})),
              asyncio.create_task(writer.write("add", 0, {"mrn:1": ["A1"]}))]
    await asyncio.sleep(0)
    rec.release.set()
    await asyncio.gather(*tasks)
    assert [(s, e) for s, _, e in rec.sent] == [("add", {"mrn:1": ["A0"]}), ("forget", {"mrn:1": ["A1"]}),
                                                ("add", {"mrn:1": ["A1"]})]


async def test_a_failed_signal_fails_its_writers_only() -> None:
    rec = Recorder()
    writer = IndexWriter(rec.send)
    rec.fail_next = RuntimeError("Temporal unavailable")
    first = asyncio.create_task(writer.write("add", 1, {"mrn:1": ["A1"]}))
    await asyncio.sleep(0)
    second = asyncio.create_task(writer.write("add", 1, {"mrn:2": ["A2"]}))
    await asyncio.sleep(0)
    rec.release.set()
    with pytest.raises(RuntimeError, match="unavailable"):
        await first
    await second  # the next signal went out and succeeded
    assert [e for _, _, e in rec.sent] == [{"mrn:1": ["A1"]}, {"mrn:2": ["A2"]}]


async def test_a_writer_that_gives_up_does_not_cancel_the_signal_of_the_others() -> None:
    rec = Recorder()
    writer = IndexWriter(rec.send)
    blocker = asyncio.create_task(writer.write("add", 1, {"mrn:0": ["A0"]}))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(writer.write("add", 1, {"mrn:1": ["A1"]}))
    patient = asyncio.create_task(writer.write("add", 1, {"mrn:2": ["A2"]}))
    await asyncio.sleep(0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(impatient, 0.01)
    rec.release.set()
    await asyncio.gather(blocker, patient)
    assert [e for _, _, e in rec.sent] == [{"mrn:0": ["A0"]}, {"mrn:1": ["A1"], "mrn:2": ["A2"]}]
