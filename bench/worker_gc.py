"""Garbage-collection pauses of a worker process holding many cached order workflows.

    .venv/bin/python bench/worker_gc.py [--n 600] [--caches 1000,100]

For each sticky-cache size (RADFLOW_WORKER_MAX_CACHED_WORKFLOWS), in its own Temporal dev server (SQLite file,
as `radflow dev`), one in-process radflow worker configured as `radflow dev` runs it (codec on,
worklist sync lane) takes N new orders (the ORM NW start request, 16 concurrent starters) until
all are on the worklist. It reports the live GC-tracked objects afterwards (per order, over the
process's baseline), the time of one full collection then, and every generation-2 collection
during the run (count, max, total): a full collection stops the whole process, which in
`radflow dev` is also the MLLP gateway and the API. Same run, same machine: compare the sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker_cost import settings_for, start_orders, worklist_rows  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.worker import build_worker  # noqa: E402


WARMUP = 20  # orders before the baseline


class Gen2Timer:
    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._t0)


async def one(n: int, cache: int) -> str:
    from radflow.service.temporal import connect

    tmp = Path(tempfile.mkdtemp(prefix="radflow-gc-"))
    server = DevServer(db_file=tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    await server.start()
    timer = Gen2Timer()
    try:
        data = tmp / "data"
        data.mkdir()
        settings = settings_for(server.address, f"gc-{cache}", data)
        client = await connect(settings)
        settings = settings.model_copy(update={"worker_max_cached_workflows": cache})
        async with build_worker(client, settings):
            # Warm-up: what loads once (hl7apy's structure tables alone are ~100,000 objects) is
            # not per order.
            warm = uuid.uuid4().hex[:6].upper()
            await start_orders(client, settings, warm, WARMUP, 4)
            while worklist_rows(data, warm) < WARMUP:
                await asyncio.sleep(0.2)
            gc.collect()
            base = len(gc.get_objects())
            gc.callbacks.append(timer)
            run = uuid.uuid4().hex[:6].upper()
            t = time.perf_counter()
            await start_orders(client, settings, run, n, 16)
            deadline = time.monotonic() + 600
            while worklist_rows(data, run) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            took = time.perf_counter() - t
            gc.callbacks.remove(timer)
            gc.collect()
            live = len(gc.get_objects())
            t0 = time.perf_counter()
            gc.collect()
            full = time.perf_counter() - t0
        during = timer.pauses
        return (f"cache {cache:>5}: {n} orders in {took:5.1f} s; live objects after {live:>8,} (+{(live - base) / n:4.0f} per order over the warmed-up baseline); "
                f"one full collection then {full * 1000:5.0f} ms; during the run {len(during)} full collections, "
                f"max {max(during, default=0) * 1000:4.0f} ms, total {sum(during) * 1000:5.0f} ms")
    finally:
        if timer in gc.callbacks:
            gc.callbacks.remove(timer)
        server.stop()


def main(args: argparse.Namespace) -> None:
    caches = [int(c) for c in args.caches.split(",")]
    print(f"N={args.n}; caches {caches}; cpus={os.cpu_count()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    for cache in caches:  # each in a fresh process: no heap left over from the previous size
        subprocess.run([sys.executable, __file__, "--n", str(args.n), "--child", str(cache)], check=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--caches", default="1000,100")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is None:
        main(args)
    else:
        print(asyncio.run(one(args.n, args.child)), flush=True)
    os._exit(0)  # temporalio workers may crash at interpreter exit (sdk-python#300)
