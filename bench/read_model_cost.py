"""What the read model (the order's memo, domain/order_view.py) costs per order, in history.

    .venv/bin/python bench/read_model_cost.py [--orders 5] [--codec] [--starts 400]

The full lifecycle of bench/order_lifecycle.py (NW, worklist, MPPS, images, ORU P and F,
delivery to a real HL7 receiver and the FHIR test server), then, over every run of each
order: memo writes (WorkflowPropertiesModified events, one Temporal action each) and their
bytes, against the whole history in the same run (events, actions, bytes), and the size of
the memo the gateway writes with the start. With --codec the payloads are encrypted
(AES-GCM, as `radflow dev` runs), which adds a few dozen bytes per payload. With --starts N
it also times N order starts with the gateway's first view as memo against N without (16
concurrent starters, on a Temporal SQLite file as `radflow dev` has, alternating over 2 rounds):
what the read model costs the ingest rate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.order_lifecycle import ACTION_EVENTS, ehr_ack, one_order  # noqa: E402
from radflow.domain import definitions as d  # noqa: E402
from radflow.domain.definitions import EventSource, OrderStatus  # noqa: E402
from radflow.domain.order import OrderPolicy, StartOrder  # noqa: E402
from radflow.domain.order_view import initial_view  # noqa: E402
from radflow.service.ordering import order_search_attributes  # noqa: E402
from radflow.gateways.mllp import serve_mllp  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.infra.settings import Settings  # noqa: E402
from radflow.service.temporal import connect  # noqa: E402
from radflow.service.wiring import order_service  # noqa: E402
from radflow.worker import build_worker  # noqa: E402
from tests.factories import make_order  # noqa: E402
from tests.fhir_server.fixture import FhirTestServer  # noqa: E402

MEMO_WRITE = EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED


async def measure(client: Client, acc: str) -> dict[str, int]:
    cost = {"events": 0, "bytes": 0, "actions": 0, "memo_writes": 0, "memo_bytes": 0, "start_memo_bytes": 0}
    handle = client.get_workflow_handle(d.order_workflow_id(acc))
    run_id: str | None = (await handle.describe()).raw_description.workflow_execution_info.first_run_id or None
    seen: set[str] = set()
    while run_id and run_id not in seen:
        seen.add(run_id)
        history = await client.get_workflow_handle(d.order_workflow_id(acc), run_id=run_id).fetch_history()
        run_id = None
        for e in history.events:
            cost["events"] += 1
            cost["bytes"] += e.ByteSize()
            cost["actions"] += e.event_type in ACTION_EVENTS
            if e.event_type == MEMO_WRITE:
                cost["memo_writes"] += 1
                cost["memo_bytes"] += e.ByteSize()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and len(seen) == 1:
                cost["start_memo_bytes"] = e.workflow_execution_started_event_attributes.memo.ByteSize()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                run_id = e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return cost


async def starts(client: Client, n: int, with_memo: bool, concurrency: int = 16) -> float:
    """Order starts per second, as OrderService starts them, with or without the first view."""
    policy = OrderPolicy(sync_consumers=[], report_consumers=[], acquisition_consumers=[])
    orders = [make_order(f"S{uuid.uuid4().hex[:10].upper()}", mrn=f"SMRN{i}") for i in range(n)]

    async def starter(chunk: list) -> None:
        for order in chunk:
            memo = {d.MEMO_ORDER_VIEW: initial_view(order, OrderStatus.SCHEDULED, datetime.now(UTC), [])} if with_memo else None
            await client.start_workflow(
                d.ORDER_WORKFLOW, StartOrder(order=order, source=EventSource.HL7, policy=policy),
                id=d.order_workflow_id(order.accession), task_queue="bench-read-model-starts",  # no worker: starts only
                search_attributes=order_search_attributes(order, OrderStatus.SCHEDULED), memo=memo)

    t = time.perf_counter()
    await asyncio.gather(*(starter(orders[i::concurrency]) for i in range(concurrency)))
    return n / (time.perf_counter() - t)


async def start_cost(n: int, codec: dict[str, object], tmp: str) -> None:
    server = DevServer(db_file=Path(tmp) / "starts.db", port=free_port(), ui_port=None)
    await server.start()
    try:
        client = await connect(Settings(temporal_address=server.address, data_dir=Path(tmp), _env_file=None, **codec))
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(2):
            for with_memo in ((True, False) if r % 2 == 0 else (False, True)):
                rates[with_memo].append(await starts(client, n, with_memo))
        memo, bare = statistics.mean(rates[True]), statistics.mean(rates[False])
        print(f"  starts: {bare:.1f}/s without the memo, {memo:.1f}/s with it (ratio {memo / bare:.2f}; "
              f"{n} per phase, 2 rounds, SQLite file)")
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--codec", action="store_true", help="encrypt payloads (AES-GCM codec), as radflow dev does")
    parser.add_argument("--starts", type=int, default=0, help="also time this many starts with and without the memo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-read-model-") as tmp:
        server = DevServer(port=free_port(), ui_port=None)
        await server.start()
        fhir = FhirTestServer()
        await fhir.start()
        ehr = await serve_mllp(ehr_ack, "127.0.0.1", 0)
        try:
            codec: dict[str, object] = {}
            if args.codec:
                from radflow.service.codec import ensure_keys_file

                ensure_keys_file(Path(tmp) / "codec-keys")
                codec = {"codec_keys_file": Path(tmp) / "codec-keys"}
            settings = Settings(
                temporal_address=server.address, task_queue="bench-read-model", data_dir=Path(tmp),
                fhir_base_url=fhir.base_url, ehr_mllp_host="127.0.0.1", ehr_mllp_port=ehr.sockets[0].getsockname()[1],
                sync_consumers=["worklist", "fhir"], report_consumers=["hl7", "fhir"],
                acquisition_consumers=["archive"], worker_spool_archive=True, _env_file=None, **codec,
            )
            client = await connect(settings)
            service = order_service(client, settings)
            async with build_worker(client, settings, task_queue=settings.task_queue):
                figures = [await measure(client, await one_order(service, n)) for n in range(args.orders)]

            def med(key: str) -> float:
                return statistics.median(f[key] for f in figures)

            print(f"full lifecycle, {args.orders} orders{' (codec on)' if args.codec else ''}, medians per order:")
            print(f"  history: {med('events'):g} events, {med('bytes') / 1024:.1f} KiB, {med('actions'):g} Temporal actions")
            print(f"  memo writes: {med('memo_writes'):g} events, {med('memo_bytes') / 1024:.1f} KiB "
                  f"({med('memo_bytes') / max(med('memo_writes'), 1):.0f} B each); start memo {med('start_memo_bytes'):g} B")
            print(f"  share of the history: events {med('memo_writes') / med('events'):.2f}, "
                  f"bytes {(med('memo_bytes') + med('start_memo_bytes')) / med('bytes'):.2f}, "
                  f"actions {med('memo_writes') / med('actions'):.2f}")
            if args.starts:
                await start_cost(args.starts, codec, tmp)
        finally:
            ehr.close()
            fhir.close()
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
