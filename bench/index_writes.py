"""What an order's index write costs in the read-model database, and what group commit and durability change.

    .venv/bin/python bench/index_writes.py [--n 2000] [--concurrency 16] [--rounds 2] [--pg]

No Temporal: only the write each ORM NW makes before its AA (three keys, one accession), through
OrderService's path (radflow/service/index_writes.py's IndexWriter, the store call in a thread).
Phases, rotated each round, each on a fresh store in a temporary directory (a real disk file):
  sqlite-full-each    SQLite, synchronous=FULL (what radflow uses), one transaction per order
  sqlite-full-group   the same, concurrent orders committed together (radflow's path)
  sqlite-normal-group synchronous=NORMAL: not durable at the AA (WAL not fsynced); the price of FULL
  pg-each / pg-group  with --pg: a throwaway PostgreSQL cluster with fsync on (tests/pg_cluster.py)
Prints orders/s, latency p50/p99, transactions per order and each phase's rate as a ratio to
sqlite-full-each measured in the same run, with the load average (figures need a quiet machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mllp_ingest import pct  # noqa: E402
from radflow.infra.order_index_store import OrderIndexStore, PgOrderIndex, SqliteOrderIndex  # noqa: E402
from radflow.service.index_writes import IndexWriter  # noqa: E402

BASELINE = "sqlite-full-each"


def entries(i: int, run: str) -> dict[str, list[str]]:
    acc = f"B{run}{i:06d}"
    return {f"mrn:M{run}{i % 500}": [acc], f"placer:P{run}{i}^CPOE": [acc], f"study:1.2.3.{run}.{i}": [acc]}


async def phase(store: OrderIndexStore, n: int, concurrency: int, run: str, group: bool) -> tuple[float, list[float], int]:
    async def send(op: str, bucket: int, part: dict[str, list[str]]) -> None:
        await asyncio.to_thread(store.add, part)

    writer = IndexWriter(send)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    transactions = [0]

    async def one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            if group:
                await writer.write("add", 0, entries(i, run))
            else:
                transactions[0] += 1
                await asyncio.to_thread(store.add, entries(i, run))
            latencies.append(time.perf_counter() - t0)

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - t
    return elapsed, latencies, writer.signals_sent if group else transactions[0]


async def main(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="radflow-bench-index-")))
        factories: dict[str, tuple[Callable[[str], OrderIndexStore], bool]] = {
            "sqlite-full-each": (lambda r: SqliteOrderIndex(tmp / f"{r}.db"), False),
            "sqlite-full-group": (lambda r: SqliteOrderIndex(tmp / f"{r}.db"), True),
            "sqlite-normal-group": (lambda r: SqliteOrderIndex(tmp / f"{r}.db", synchronous="NORMAL"), True),
        }
        if args.pg:
            from radflow.infra.read_model_db import pool
            from tests.pg_cluster import pg_cluster

            cluster = stack.enter_context(pg_cluster(durable=True))
            factories["pg-each"] = (lambda r: PgOrderIndex(pool(cluster.create_database("b"), max_size=args.concurrency)), False)
            factories["pg-group"] = (lambda r: PgOrderIndex(pool(cluster.create_database("b"), max_size=args.concurrency)), True)
        names = list(factories)
        results: dict[str, list[tuple[float, list[float], int]]] = {name: [] for name in names}
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                make, group = factories[name]
                run = f"{rnd}{names.index(name)}"
                store = make(run)
                results[name].append(await phase(store, args.n, args.concurrency, run, group))
                if isinstance(store, SqliteOrderIndex):
                    store.close()
        load = os.getloadavg()
        print(f"index writes: n={args.n} per phase, concurrency {args.concurrency}, {args.rounds} round(s); "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        base = statistics.median(args.n / e for e, _, _ in results[BASELINE])
        for name in names:
            rate = statistics.median(args.n / e for e, _, _ in results[name])
            lat = [x for _, ls, _ in results[name] for x in ls]
            tx = statistics.median(t / args.n for _, _, t in results[name])
            print(f"  {name:20s} {rate:8.0f} orders/s  p50 {pct(lat, 50) * 1000:6.1f} ms  p99 {pct(lat, 99) * 1000:6.1f} ms"
                  f"  {tx:5.2f} transactions/order  ratio to {BASELINE} {rate / base:5.2f}")
    return 0


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg", action="store_true", help="also a throwaway PostgreSQL cluster (fsync on)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    cli()
