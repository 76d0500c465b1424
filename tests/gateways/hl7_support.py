"""A real HL7 stack for gateway tests: session dev server + real worker + Hl7Gateway on loopback MLLP."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import OrderStatus
from radflow.domain.hl7.ack import AckReceived, read_ack
from radflow.domain.order import OrderState
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.infra.mllp_client import send_messages
from radflow.infra.order_index_store import order_index_store
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.worker import build_worker

DATA = Path(__file__).resolve().parent.parent / "data" / "hl7"
_IDS = re.compile(rb"(ACC|MRN|PL|FL)(\d{4,5})")


def fixture(name: str, tag: str) -> bytes:
    """A fixture message with its accession/MRN/placer/filler numbers made unique by `tag`."""
    return _IDS.sub(lambda m: m.group(0) + tag.encode(), (DATA / name).read_bytes())


def ack_of(raw: bytes) -> AckReceived:
    ack = read_ack(raw.decode("latin-1"))
    assert ack is not None, raw
    return ack


@dataclass
class Hl7Stack:
    client: Client
    service: OrderService
    gateway: Hl7Gateway
    settings: Settings
    host: str
    port: int
    tag: str

    def msg(self, name: str) -> bytes:
        return fixture(name, self.tag)

    def acc(self, base: str) -> str:
        return base + self.tag

    async def send(self, *messages: bytes) -> list[AckReceived]:
        return [ack_of(a) for a in await send_messages(self.host, self.port, list(messages), timeout_s=20)]

    async def send_raw(self, data: bytes, frames: int = 1) -> list[bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(data)
            await writer.drain()
            out = []
            for _ in range(frames):
                chunk = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 20)
                out.append(chunk[chunk.index(b"\x0b") + 1 : -2])
            return out
        finally:
            writer.close()

    async def state(self, accession: str) -> OrderState:
        return await self.service.get_state(accession)

    async def wait_for(self, accession: str, check: Callable[[OrderState], bool], timeout_s: float = 15.0) -> OrderState:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            state = await self.state(accession)
            if check(state) or asyncio.get_running_loop().time() > deadline:
                return state
            await asyncio.sleep(0.05)

    async def wait_status(self, accession: str, status: OrderStatus) -> OrderState:
        return await self.wait_for(accession, lambda s: s.status == status)

    async def count(self, query: str, expected: int, timeout_s: float = 10.0) -> int:
        """Visibility count, waited for until it reaches `expected` (it is eventually consistent)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            n = (await self.client.count_workflows(query)).count
            if n >= expected or asyncio.get_running_loop().time() > deadline:
                return n
            await asyncio.sleep(0.1)


def stack_settings(tmp_path: Path, task_queue: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        data_dir=tmp_path,
        task_queue=task_queue,
        step_initial_interval_s=0.1,
        step_max_attempts=2,
        accession_prefix="T" + uuid.uuid4().hex[:4].upper(),
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def hl7_stack(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Hl7Stack]:
    async with open_hl7_stack(client, task_queue, tmp_path) as stack:
        yield stack


@asynccontextmanager
async def open_hl7_stack(client: Client, task_queue: str, tmp_path: Path, **overrides: object) -> AsyncIterator[Hl7Stack]:
    """The gateway on loopback and a worker, with settings overridden for one test module."""
    settings = stack_settings(tmp_path, task_queue, **overrides)
    service = OrderService(client, task_queue=task_queue, policy=settings.order_policy(), rpc_timeout_s=10,
                           accession_prefix=settings.accession_prefix, index_store=order_index_store(settings))
    gateway = Hl7Gateway(service, settings)
    server = await gateway.serve("127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        async with build_worker(client, settings, task_queue=task_queue):
            yield Hl7Stack(client, service, gateway, settings, host, port, uuid.uuid4().hex[:6].upper())
    finally:
        server.close()
        await server.wait_closed()
