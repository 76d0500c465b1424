"""A burst of ORM^O01 NW on `radflow dev`: does processing keep up, and do reads stay fast? (issue 12 item 7)

    .venv/bin/python bench/burst.py [--n 2000] [--concurrency 16] [--seconds 60] [--load 0.5]

Runs the real `radflow dev` (one process: Temporal dev server on its SQLite file, worker,
MLLP, DICOM, API; payload encryption on, as a newcomer runs it) in a scratch data dir, then:
  idle       after a warm-up, --idle-reads GETs of warm-up orders one after another: the baseline
  burst      N scheduled orders on C MLLP connections as fast as the AAs come back (the ingest
             rate). Meanwhile a reader GETs /orders/{accession} of orders already acknowledged
             (default read: the read model), ~--reads per second, and a second reader asks
             ?consistency=strong once a second (the query path, for contrast). An order counts
             as processed when it is on the Modality Worklist (its row in the worklist read
             model the MWL SCP serves, polled every 50 ms: latencies carry up to 50 ms of that).
  half load  after the backlog drained (radflow dev and its Temporal server idle): orders at --load x the ingest rate for --seconds,
             open loop (Poisson arrivals, latency from the scheduled send), order -> worklist.
Prints, from the same run: ingested/s, processed/s and their ratio (goal >= 0.9), GET latency
p50/p99 and non-200 count during the burst (goal: 0 non-200) and its ratio to the idle
baseline, order -> MWL p50/p99 at half load (goal p99 < 1 s). `radflow dev` runs the API in the
worker's process: under a burst its reads share one event loop (and the GIL) with the worker.
The machine may be shared: compare ratios across runs, not rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.ack_open_loop import ConnectionPool, poisson_arrivals  # noqa: E402
from bench.mllp_ingest import drain, orm, pct  # noqa: E402
from radflow.domain.hl7.ack import read_ack  # noqa: E402
from radflow.devstack import free_port  # noqa: E402
from radflow.infra.mllp_client import MllpClient  # noqa: E402


def accession(i: int, run: str) -> str:
    return f"A{run}{i}"  # what orm() puts in OBR-18


class Worklist:
    """First time each accession was seen on the worklist (rows with an SPS status are listed)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.seen: dict[str, float] = {}

    def poll(self) -> None:
        if not self.db.exists():
            return
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
        try:
            rows = conn.execute("SELECT accession FROM worklist WHERE sps_status != ''").fetchall()
        except sqlite3.OperationalError:  # table not created yet / busy: next poll
            return
        finally:
            conn.close()
        now = time.perf_counter()
        for (acc,) in rows:
            self.seen.setdefault(acc, now)

    async def follow(self, stop: asyncio.Event, every_s: float = 0.05) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.poll)
            await asyncio.sleep(every_s)


class Reader:
    """GETs one random acknowledged order per tick; keeps latency and status of each."""

    def __init__(self, api: str, params: dict[str, str] | None = None) -> None:
        self.api = api
        self.params = params or {}
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    async def run(self, acked: list[str], per_s: float, stop: asyncio.Event) -> None:
        rng = random.Random(2)
        async with httpx.AsyncClient(base_url=self.api, timeout=30) as http:
            while not stop.is_set():
                if acked:
                    await self.one(http, rng.choice(acked))
                await asyncio.sleep(1 / per_s)

    async def back_to_back(self, accessions: list[str], n: int) -> None:
        async with httpx.AsyncClient(base_url=self.api, timeout=30) as http:
            for i in range(n):
                await self.one(http, accessions[i % len(accessions)])

    async def one(self, http: httpx.AsyncClient, acc: str) -> None:
        t0 = time.perf_counter()
        try:
            code = (await http.get(f"/orders/{acc}", params=self.params)).status_code
        except httpx.HTTPError:
            code = 0
        self.latencies.append(time.perf_counter() - t0)
        self.statuses[code] = self.statuses.get(code, 0) + 1

    def line(self, label: str) -> str:
        if not self.latencies:
            return f"{label}: no reads"
        bad = sum(n for code, n in self.statuses.items() if code != 200)
        return (f"{label}: {len(self.latencies)} GETs, p50 {statistics.median(self.latencies) * 1000:.1f} ms  "
                f"p99 {pct(self.latencies, 99) * 1000:.1f} ms  max {max(self.latencies) * 1000:.1f} ms  "
                f"non-200 {bad} {dict(sorted(self.statuses.items()))}")


async def burst(mllp_port: int, messages: list[tuple[str, bytes]], concurrency: int, acked: list[str],
                acked_at: dict[str, float]) -> int:
    chunks = [messages[i::concurrency] for i in range(concurrency)]
    not_aa = 0

    async def connection(chunk: list[tuple[str, bytes]]) -> None:
        nonlocal not_aa
        async with MllpClient("127.0.0.1", mllp_port, timeout_s=60) as mllp:
            for acc, raw in chunk:
                ack = read_ack((await mllp.send(raw)).decode("latin-1"))
                if ack is None or ack.code != "AA":
                    not_aa += 1
                    continue
                acked_at[acc] = time.perf_counter()
                acked.append(acc)

    await asyncio.gather(*(connection(c) for c in chunks if c))
    return not_aa


async def open_loop(mllp_port: int, rate: float, seconds: float, run: str) -> tuple[dict[str, float], int]:
    """Orders sent on a Poisson schedule; returns accession -> scheduled send time."""
    pool = ConnectionPool(mllp_port)
    due_at: dict[str, float] = {}
    not_aa = 0
    rng = random.Random(1)

    async def one(i: int, due: float) -> None:
        nonlocal not_aa
        ack = read_ack((await pool.send(orm(i, run))).decode("latin-1"))
        if ack is None or ack.code != "AA":
            not_aa += 1
        else:
            due_at[accession(i, run)] = due

    await poisson_arrivals(one, rate, seconds, rng)
    await pool.close()
    return due_at, not_aa


async def wait_seen(worklist: Worklist, accessions: list[str], max_wait_s: float) -> bool:
    deadline = time.perf_counter() + max_wait_s
    while time.perf_counter() < deadline:
        if all(a in worklist.seen for a in accessions):
            return True
        await asyncio.sleep(0.1)
    return False


async def start_dev(data: Path, ports: dict[str, int]) -> asyncio.subprocess.Process:
    cmd = [sys.executable, "-m", "radflow", "dev", "--headless", "--data-dir", str(data),
           "--temporal-port", str(ports["temporal"]), "--mllp-port", str(ports["mllp"]),
           "--api-port", str(ports["api"]), "--dicom-port", str(ports["dicom"])]
    log = open(data.parent / "dev.log", "ab")  # noqa: SIM115 - the child writes to it until it exits
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=log, stderr=log,
                                                env=os.environ | {"RADFLOW_LOG_LEVEL": "WARNING"})
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"radflow dev exited at start (see {data.parent / 'dev.log'})")
            try:
                if (await http.get(f"http://127.0.0.1:{ports['api']}/healthz", timeout=2)).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    proc.kill()
    raise RuntimeError("radflow dev not healthy after 90 s")


def family(pid: int) -> list[int]:
    """The process and its children (radflow dev runs the Temporal server as one)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def spread(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.0f} ms  p99 {pct(values, 99) * 1000:.0f} ms  max {max(values) * 1000:.0f} ms"


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="radflow-burst-"))
    data = tmp / "data"
    ports = {k: free_port() for k in ("temporal", "mllp", "api", "dicom")}
    api = f"http://127.0.0.1:{ports['api']}"
    proc = await start_dev(data, ports)
    worklist = Worklist(data / "worklist.db")
    stop_poll = asyncio.Event()
    poller = asyncio.create_task(worklist.follow(stop_poll))
    try:
        print(f"radflow dev (SQLite, codec on) in {tmp}; cpus={os.cpu_count()}; load average {os.getloadavg()[0]:.1f} "
              f"(a busy machine makes the figures noisy)")
        warm = [(accession(i, "W"), orm(i, "W")) for i in range(args.warmup)]
        await burst(ports["mllp"], warm, args.concurrency, [], {})
        await wait_seen(worklist, [a for a, _ in warm], args.max_wait)
        idle = Reader(api)
        await idle.back_to_back([a for a, _ in warm], args.idle_reads)
        print("  " + idle.line("idle: GET /orders/{acc} (read model), back to back"))

        run = "B" + uuid.uuid4().hex[:4].upper()
        messages = [(accession(i, run), orm(i, run)) for i in range(args.n)]
        acked: list[str] = []
        acked_at: dict[str, float] = {}
        stop_reads = asyncio.Event()
        eventual, strong = Reader(api), Reader(api, {"consistency": "strong"})
        readers = [asyncio.create_task(eventual.run(acked, args.reads, stop_reads)),
                   asyncio.create_task(strong.run(acked, 1.0, stop_reads))]
        t0 = time.perf_counter()
        not_aa = await burst(ports["mllp"], messages, args.concurrency, acked, acked_at)
        ingest_s = time.perf_counter() - t0
        all_seen = await wait_seen(worklist, acked, args.max_wait)
        stop_reads.set()
        await asyncio.gather(*readers)
        seen = [worklist.seen[a] for a in acked if a in worklist.seen]
        process_s = (max(seen) - t0) if seen else float("inf")
        ingested, processed = len(acked) / ingest_s, len(seen) / process_s
        print(f"burst: {args.n} ORM NW on {args.concurrency} connections, {len(acked)} AA, non-AA {not_aa}")
        print(f"  ingested  {ingested:6.1f}/s  (last AA after {ingest_s:.1f} s)")
        print(f"  processed {processed:6.1f}/s  (last on the worklist after {process_s:.1f} s; "
              f"{len(seen)} of {len(acked)} seen{'' if all_seen else ', gave up waiting'})")
        print(f"  ratio processed/ingested = {processed / ingested:.2f} (goal >= 0.9)")
        lag = [worklist.seen[a] - acked_at[a] for a in acked if a in worklist.seen]
        if lag:
            print(f"  AA -> worklist during the burst: {spread(lag)}")
        print("  " + eventual.line("GET /orders/{acc} (read model)"))
        if eventual.latencies and idle.latencies:
            print(f"  read model p99 during the burst / idle p99 = {pct(eventual.latencies, 99) / pct(idle.latencies, 99):.1f}")
        print("  " + strong.line("GET /orders/{acc}?consistency=strong (query, for contrast)"))

        # Worklist rows are not all the burst left: index signals and later tasks must not bill the next phase.
        await drain(family(proc.pid), args.pause)
        rate = ingested * args.load
        due_at, bad2 = await open_loop(ports["mllp"], rate, args.seconds, "H" + uuid.uuid4().hex[:4].upper())
        await wait_seen(worklist, list(due_at), args.max_wait)
        latency = [worklist.seen[a] - due for a, due in due_at.items() if a in worklist.seen]
        missing = len(due_at) - len(latency)
        print(f"half load: {len(due_at)} orders at {rate:.1f}/s ({args.load:.2f} x ingest) for {args.seconds:.0f} s, "
              f"non-AA {bad2}, not on the worklist {missing}")
        if latency:
            print(f"  order -> worklist from the scheduled send: {spread(latency)} (goal p99 < 1 s)")
        bad_reads = sum(n for code, n in eventual.statuses.items() if code != 200)
        return 0 if not_aa == bad2 == missing == bad_reads == 0 and all_seen else 1
    finally:
        stop_poll.set()
        await poller
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="orders in the burst")
    p.add_argument("--concurrency", "-c", type=int, default=16, help="MLLP connections of the burst")
    p.add_argument("--reads", type=float, default=20.0, help="read-model GETs per second during the burst")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the half-load phase")
    p.add_argument("--load", type=float, default=0.5, help="half-load rate as a share of the ingest rate")
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--idle-reads", type=int, default=200, help="GETs of the idle baseline")
    p.add_argument("--pause", type=float, default=120.0, help="at most this long for the stack to go idle after the burst")
    p.add_argument("--max-wait", type=float, default=600.0, help="at most this long for orders to reach the worklist")
    code = asyncio.run(main(p.parse_args()))
    sys.stdout.flush()
    os._exit(code)  # temporalio processes may crash at interpreter exit (sdk-python#300)


if __name__ == "__main__":
    cli()
