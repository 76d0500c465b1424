"""What an order's index writes cost beside its start: before and after group commit, same run.

    .venv/bin/python bench/index_writes.py [--n 300] [--concurrency 16] [--rounds 2]

Its own Temporal dev server (SQLite file, as `radflow dev`), a worker process, and this
process as the client (no MLLP: the Temporal calls behind each AA only). Phases, rotated
each round, each on an idle server:
  raw         `client.start_workflow` of the order, nothing else (bench/mllp_ingest.py's baseline)
  sequential  the order path before group commit: one signal-with-start per index bucket of
              the order's keys (patient, placer, study), then the start (re-enacted here)
  service     OrderService.start_order as the gateways call it: index writes shared between
              concurrent orders (one signal per bucket in flight), beside the start
Prints orders/s, latency p50/p99, the Temporal server's and worker's CPU per order, the
signals the service phase sent per order, and the ratios to raw. CPU per order is the
steadier figure on a shared machine; compare ratios, not rates, across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from bench.mllp_ingest import _spawn, _stop, cpu_seconds, drain, orm, pct, phase_raw  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.domain import definitions as d  # noqa: E402
from radflow.domain.definitions import EventSource, OrderStatus  # noqa: E402
from radflow.domain.hl7.decode import decode  # noqa: E402
from radflow.domain.hl7.mapping import map_message  # noqa: E402
from radflow.domain.hl7.parse import parse_message  # noqa: E402
from radflow.domain.order import OrderPolicy, StartOrder  # noqa: E402
from radflow.domain.order_index import by_bucket, patient_index_key, placer_index_key, study_index_key  # noqa: E402
from radflow.service.ordering import OrderService  # noqa: E402


def commands(n: int, run: str) -> list:
    out = []
    for i in range(n):
        dec = decode(orm(i, run))
        [cmd] = map_message(parse_message(dec.text, dec.codec), charset=dec.charset)
        out.append(cmd)
    return out


SEQUENTIAL_SIGNALS = [0]


async def sequential(service: OrderService, cmd) -> None:
    """The path before group commit: every bucket its own signal, the start after them."""
    order = cmd.order
    keys = [patient_index_key(order.patient.mrn), placer_index_key(cmd.placer_key),
            study_index_key(order.study_instance_uid)]
    parts = by_bucket({key: [order.accession] for key in keys})
    SEQUENTIAL_SIGNALS[0] += len(parts)
    await asyncio.gather(*(service._index_bucket(d.INDEX_ADD_SIGNAL, bucket, part) for bucket, part in parts.items()))
    start = StartOrder(order=order, source=EventSource.HL7, control_id=cmd.control_id, policy=service.policy)
    await service._start(order, start, OrderStatus.SCHEDULED, cmd.control_id)


async def run_phase(phase: str, client: Client, service: OrderService, task_queue: str, run: str, n: int,
                    concurrency: int) -> tuple[float, list[float]]:
    if phase == "raw":
        return await phase_raw(client, task_queue, [orm(i, run) for i in range(n)], concurrency)
    cmds = commands(n, run)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(cmd) -> None:
        async with gate:
            t0 = time.perf_counter()
            if phase == "sequential":
                await sequential(service, cmd)
            else:
                await service.start_order(cmd.order, EventSource.HL7, cmd.control_id, placer_key=cmd.placer_key)
            latencies.append(time.perf_counter() - t0)

    t = time.perf_counter()
    await asyncio.gather(*(one(c) for c in cmds))
    return time.perf_counter() - t, latencies


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="radflow-bench-"))
    server = DevServer(db_file=tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    await server.start()
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen] = []
    phases = ["raw", "sequential", "service"]
    try:
        procs.append(_spawn(["--role", "worker", server.address, task_queue, str(tmp)], tmp / "worker.log"))
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        policy = OrderPolicy(sync_consumers=[], report_consumers=[], acquisition_consumers=[])
        service = OrderService(client, task_queue=task_queue, policy=policy)
        print(f"dev server (SQLite); worker in its own process; N={args.n} C={args.concurrency} rounds={args.rounds}; "
              f"cpus={os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (a busy machine makes rates noisy)")
        for phase in phases:  # warm-up: every bucket exists, imports done
            await run_phase(phase, client, service, task_queue, "W" + uuid.uuid4().hex[:5], 20, args.concurrency)

        totals = {p: {"s": 0.0, "n": 0, "lat": [], "server": 0.0, "worker": 0.0} for p in phases}
        signals = writes = seq_orders = 0
        pids = [server.process.pid, procs[0].pid]
        for r in range(args.rounds):
            for phase in phases[r % 3:] + phases[:r % 3]:
                # The previous phase's workflow tasks are processed (and billed) before this one starts;
                # this phase's are billed to it, up to the next idle point.
                await drain(pids, args.pause)
                before = [cpu_seconds(p) for p in pids]
                sent0 = service.index_writer.signals_sent
                elapsed, lat = await run_phase(phase, client, service, task_queue,
                                               f"{phase[:2].upper()}{r}{uuid.uuid4().hex[:4]}", args.n, args.concurrency)
                await drain(pids, args.pause)
                used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
                if phase == "sequential":
                    seq_orders += args.n
                if phase == "service":
                    signals += service.index_writer.signals_sent - sent0
                    writes += args.n
                t = totals[phase]
                t["s"] += elapsed
                t["n"] += args.n
                t["lat"] += lat
                t["server"] += used[0]
                t["worker"] += used[1]
                print(f"  round {r + 1} {phase:10s}: {args.n / elapsed:6.1f}/s  p50 {statistics.median(lat) * 1000:6.1f} ms  "
                      f"p99 {pct(lat, 99) * 1000:7.1f} ms  CPU ms/order: server {used[0] / args.n * 1000:5.1f} "
                      f"worker {used[1] / args.n * 1000:5.1f}   load {os.getloadavg()[0]:.1f}", flush=True)

        print()
        rate = {p: t["n"] / t["s"] for p, t in totals.items()}
        server_ms = {p: t["server"] / t["n"] * 1000 for p, t in totals.items()}
        for p, t in totals.items():
            print(f"{p:10s} {rate[p]:6.1f} orders/s  p50 {statistics.median(t['lat']) * 1000:6.1f} ms  "
                  f"p99 {pct(t['lat'], 99) * 1000:7.1f} ms  server CPU {server_ms[p]:5.1f} ms/order  "
                  f"worker CPU {t['worker'] / t['n'] * 1000:5.1f} ms/order")
        print(f"rate ratio to raw: sequential {rate['sequential'] / rate['raw']:.2f}, service {rate['service'] / rate['raw']:.2f}; "
              f"server CPU ratio raw/x: sequential {server_ms['raw'] / server_ms['sequential']:.2f}, "
              f"service {server_ms['raw'] / server_ms['service']:.2f}")
        print(f"index signals per order: sequential {SEQUENTIAL_SIGNALS[0] / max(seq_orders, 1):.2f} (one per bucket "
              f"of its keys), service {signals / max(writes, 1):.2f}")
        return 0
    finally:
        for proc in reversed(procs):
            _stop(proc)
        server.stop()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="orders per phase and round")
    p.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent orders (MLLP connections)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pause", type=float, default=60.0, help="at most this long waiting for server and worker to go idle")
    code = asyncio.run(main(p.parse_args()))
    sys.stdout.flush()
    os._exit(code)  # temporalio processes may crash at interpreter exit (sdk-python#300)


if __name__ == "__main__":
    cli()
