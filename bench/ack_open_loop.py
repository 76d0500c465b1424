"""ACK latency of ORM^O01 NW over MLLP at half the measured capacity, open loop.

    .venv/bin/python bench/ack_open_loop.py [--n 600] [--concurrency 16] [--seconds 60] [--load 0.5]

Same stack as bench/mllp_ingest.py (its own Temporal dev server on a SQLite file, a worker
process, an MLLP gateway process). Two phases in one run:
  capacity   N messages on C connections as fast as ACKs come back (closed loop): the rate R
  open loop  messages sent at load x R for S seconds on a fixed schedule (Poisson arrivals),
             whatever the answers do; latency counts from the *scheduled* send time, so a
             stall that delays later sends shows up in their latency (no coordinated omission)
Prints R, the offered and achieved open-loop rates and ACK latency p50/p90/p99/max (goal: p99
< 100 ms at half capacity). Saturated runs (bench/mllp_ingest.py) show queueing, not this.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mllp_ingest import _spawn, drain, orm, pct, phase_mllp, stop_process  # noqa: E402
from radflow.domain.hl7.ack import read_ack  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.infra.mllp_client import MllpClient  # noqa: E402


class ConnectionPool:
    """MLLP is one message in flight per connection: an open-loop sender needs as many
    connections as messages in flight, opened on demand and reused."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[MllpClient] = []
        self.opened = 0

    async def send(self, raw: bytes) -> bytes:
        conn = self.idle.pop() if self.idle else None
        if conn is None:
            conn = MllpClient("127.0.0.1", self.port, timeout_s=60)
            await conn.__aenter__()
            self.opened += 1
        try:
            answer = await conn.send(raw)
        except BaseException:
            await conn.__aexit__(None, None, None)
            raise
        self.idle.append(conn)
        return answer

    async def close(self) -> None:
        for conn in self.idle:
            await conn.__aexit__(None, None, None)


async def open_loop(port: int, rate: float, seconds: float, run: str) -> tuple[list[float], int, float, int]:
    pool = ConnectionPool(port)
    latencies: list[float] = []
    not_aa = 0
    rng = random.Random(1)

    async def one(i: int, due: float) -> None:
        nonlocal not_aa
        ack = read_ack((await pool.send(orm(i, run))).decode("latin-1"))
        latencies.append(time.perf_counter() - due)
        if ack is None or ack.code != "AA":
            not_aa += 1

    sent, elapsed = await poisson_arrivals(one, rate, seconds, rng)
    await pool.close()
    return latencies, not_aa, sent / elapsed, pool.opened


async def poisson_arrivals(one: Callable[[int, float], Awaitable[None]], rate: float, seconds: float,
                           rng: random.Random) -> tuple[int, float]:
    """Start one(i, scheduled time) at Poisson arrivals for `seconds`, never waiting for earlier ones
    (no coordinated omission); returns (messages, elapsed seconds) once every one finished."""
    tasks = []
    start = due = time.perf_counter()
    i = 0
    while due - start < seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
        i += 1
        due += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    return i, time.perf_counter() - start


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="radflow-bench-"))
    server = DevServer(db_file=tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    await server.start()
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    gw_port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_spawn(["--role", "worker", server.address, task_queue, str(tmp)], tmp / "worker.log"))
        procs.append(_spawn(["--role", "gateway", server.address, task_queue, str(tmp), str(gw_port)], tmp / "gateway.log"))
        print(f"dev server (SQLite); worker and MLLP gateway in their own processes; cpus={os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.1f} (a busy machine makes the figures noisy)")
        await phase_mllp(gw_port, [orm(i, "W" + uuid.uuid4().hex[:4]) for i in range(args.warmup)], args.concurrency)

        await drain([server.process.pid, procs[0].pid], args.pause)
        elapsed, lat, bad = await phase_mllp(gw_port, [orm(i, "C" + uuid.uuid4().hex[:4]) for i in range(args.n)],
                                             args.concurrency)
        capacity = args.n / elapsed
        print(f"capacity (closed loop, C={args.concurrency}): {capacity:.1f} msgs/s   "
              f"p50 {statistics.median(lat) * 1000:.1f} ms  p99 {pct(lat, 99) * 1000:.1f} ms  non-AA {bad}")

        # The backlog the burst left (workflow tasks) would bill the open-loop phase.
        await drain([server.process.pid, procs[0].pid], args.pause)
        offered = capacity * args.load
        lat, bad2, achieved, conns = await open_loop(gw_port, offered, args.seconds, "O" + uuid.uuid4().hex[:4])
        print(f"open loop at {args.load:.2f} x capacity: offered {offered:.1f}/s, sent {achieved:.1f}/s over "
              f"{args.seconds:.0f} s, {len(lat)} messages on {conns} connections, non-AA {bad2}")
        print(f"ACK latency from scheduled send: p50 {statistics.median(lat) * 1000:.1f} ms   "
              f"p90 {pct(lat, 90) * 1000:.1f} ms   p99 {pct(lat, 99) * 1000:.1f} ms   max {max(lat) * 1000:.1f} ms "
              f"(goal p99 < 100 ms)")
        return 0 if bad == bad2 == 0 else 1
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        server.stop()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=600, help="messages of the capacity phase")
    p.add_argument("--concurrency", "-c", type=int, default=16, help="connections of the capacity phase")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the open-loop phase")
    p.add_argument("--load", type=float, default=0.5, help="open-loop rate as a share of the measured capacity")
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--pause", type=float, default=60.0, help="at most this long waiting for server and worker to go idle")
    code = asyncio.run(main(p.parse_args()))
    sys.stdout.flush()
    os._exit(code)  # temporalio processes may crash at interpreter exit (sdk-python#300)


if __name__ == "__main__":
    cli()
