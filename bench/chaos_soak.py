"""Chaos soak: N orders through separate radflow processes while kill -9 hits them, then check every order.

    .venv/bin/python bench/chaos_soak.py [--orders 1000] [--kills 10] [--concurrency 8] [--seed S] [--keep]

What runs, each a separate process started the way an operator starts it:
  temporal   `temporal server start-dev` with a SQLite file (as `radflow dev` does)
  worker     `radflow worker`
  mllp       `radflow mllp`              (the HL7 gateway the senders talk to)
  api        `radflow api`               (read by a background poller during the run, and by the final check)
and, inside this script, an EHR: an MLLP sink that answers AA to every ORU radflow delivers and counts them.

Per order i (concurrent senders, each message resent with the same MSH-10 until AA; on AE, AR,
timeouts and connection errors alike, as real senders do):
  ORM^O01 NW without accession (radflow allocates it; the placer number is the only key),
  ADT^A08 renaming the patient (reaches the order through the patient lookup),
  ORU^R01 F without accession (reaches the order through the placer lookup).
Meanwhile `--kills` times, at random moments, one of worker / mllp / api / temporal gets SIGKILL
and is restarted after 0.5-3 s (a process that dies on its own is restarted too, and counted).

Then, kills stopped, it waits for the orders to settle and checks every one (via visibility for the
list, then the HTTP API for each order's state and timeline):
  lost        NW acknowledged but no order for the patient
  duplicated  more than one order for one patient/placer
  stuck       not DELIVERED at the end of the settle time (NEEDS_ATTENTION included)
  wrong       delivered but not as sent: A08 missing, NEW_ORDER or final REPORT not exactly once
and the EHR sink: orders whose final report never arrived, and extra copies (at-least-once: counted,
not an error). Exit status 0 only when lost = duplicated = stuck = wrong = undelivered = 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from bench.failover_cluster import EhrSink  # noqa: E402
from radflow.domain import definitions as d  # noqa: E402
from radflow.domain.hl7.ack import read_ack  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.infra.mllp_client import MllpClient  # noqa: E402

ROLES = ("worker", "mllp", "api")


# ------------------------------------------------------------------ messages
def nw(run: str, i: int) -> bytes:
    return "\r".join([
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORM^O01|N{run}{i}|P|2.3",
        f"PID|1||M{run}{i}^^^GENHOSP^MR||Soak^Patient{i}||19750412|F",
        "PV1|1|O|RAD^R101^1^GENHOSP",
        f"ORC|NW|P{run}{i}^CPOE",
        f"OBR|1|P{run}{i}^CPOE||CTHEAD^CT head^L",
    ]).encode()


def a08(run: str, i: int) -> bytes:
    return "\r".join([
        f"MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240302090000||ADT^A08|U{run}{i}|P|2.3",
        "EVN|A08|20240302090000",
        f"PID|1||M{run}{i}^^^GENHOSP^MR||Updated^Patient{i}||19750412|F",
    ]).encode()


def oru(run: str, i: int) -> bytes:
    obr = ["OBR", "1", f"P{run}{i}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 20 + ["F"]
    return "\r".join([
        f"MSH|^~\\&|DICTATION|GENHOSP|RADFLOW|RAD|20240303090000||ORU^R01|R{run}{i}|P|2.3",
        f"PID|1||M{run}{i}^^^GENHOSP^MR",
        "|".join(obr),
        f"OBX|1|TX|&GDT^Report||Soak report {i}: no acute findings.||||||F",
    ]).encode()


# ------------------------------------------------------------------ processes
@dataclass
class Stack:
    tmp: Path
    temporal_port: int
    mllp_port: int
    api_port: int
    ehr_port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    server: DevServer | None = None
    down: set[str] = field(default_factory=set)  # being restarted by the chaos task
    kills: collections.Counter = field(default_factory=collections.Counter)
    own_exits: collections.Counter = field(default_factory=collections.Counter)
    stopping: bool = False

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "RADFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "RADFLOW_DATA_DIR": str(self.tmp / "data"),
            "RADFLOW_MLLP_HOST": "127.0.0.1", "RADFLOW_MLLP_PORT": str(self.mllp_port),
            "RADFLOW_API_HOST": "127.0.0.1", "RADFLOW_API_PORT": str(self.api_port),
            "RADFLOW_EHR_MLLP_HOST": "127.0.0.1", "RADFLOW_EHR_MLLP_PORT": str(self.ehr_port),
            "RADFLOW_LOG_LEVEL": "INFO",
            "RADFLOW_API_AUTH": "none",  # loopback only, read by this script alone (docs/security.md)
            "RADFLOW_HEALTH_PORT": "0",  # several runs (or the failover bench) on one host must not collide
        })
        return env

    async def start_temporal(self) -> None:
        self.server = DevServer(db_file=self.tmp / "temporal.db", port=self.temporal_port, ui_port=None,
                                log_file=self.tmp / "temporal.log")
        await self.server.start(timeout_s=120)

    def start_role(self, role: str) -> None:
        log = open(self.tmp / f"{role}.log", "ab")
        self.procs[role] = subprocess.Popen([sys.executable, "-m", "radflow", role], cwd=ROOT, env=self.env(),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, role: str) -> None:
        proc = self.server.process if role == "temporal" and self.server else self.procs.get(role)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.kills[role] += 1

    async def supervise(self) -> None:
        """Restart a process that exited without being told to (a crash is a finding: counted)."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            for role in ROLES:
                proc = self.procs.get(role)
                if role not in self.down and proc is not None and proc.poll() is not None and not self.stopping:
                    self.own_exits[role] += 1
                    await asyncio.sleep(1.0)
                    self.start_role(role)
            server = self.server
            if "temporal" not in self.down and server and server.process and server.process.poll() is not None:
                self.own_exits["temporal"] += 1
                self.down.add("temporal")
                try:
                    await self.start_temporal()
                finally:
                    self.down.discard("temporal")

    def stop_all(self) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if self.server:
            self.server.stop()


async def chaos(stack: Stack, kills: int, duration_s: float, rng: random.Random) -> None:
    """`kills` SIGKILLs at random moments over about `duration_s`, each followed by a restart."""
    moments = sorted(rng.uniform(0.05, 0.9) * duration_s for _ in range(kills))
    t0 = time.monotonic()
    for at in moments:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        role = rng.choice([*ROLES, "temporal"])
        stack.down.add(role)
        try:
            stack.kill(role)
            print(f"  t={time.monotonic() - t0:6.1f}s kill -9 {role}", flush=True)
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            if role == "temporal":
                await stack.start_temporal()
            else:
                stack.start_role(role)
        finally:
            stack.down.discard(role)


# ------------------------------------------------------------------ EHR sink
# ------------------------------------------------------------------ senders
@dataclass
class SendStats:
    acked: int = 0
    resends: int = 0
    answers: collections.Counter = field(default_factory=collections.Counter)  # non-AA codes, "timeout", "conn"
    done_orders: list[int] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))  # kind -> s to AA


async def send_until_aa(port: int, payload: bytes, stats: SendStats, conn: list[MllpClient | None]) -> None:
    attempt = 0
    while True:
        if attempt:
            stats.resends += 1
            await asyncio.sleep(min(2.0, 0.2 * attempt))
        attempt += 1
        try:
            if conn[0] is None:
                conn[0] = await MllpClient("127.0.0.1", port, timeout_s=15).connect()
            ack = read_ack((await conn[0].send(payload)).decode("latin-1"))
        except Exception as err:  # refused, reset, timeout: reconnect and resend the same message
            stats.answers["timeout" if "ACK within" in str(err) else "conn"] += 1
            if conn[0] is not None:
                await conn[0].close()
            conn[0] = None
            continue
        code = ack.code if ack else "none"
        if code == "AA":
            stats.acked += 1
            return
        stats.answers[code] += 1


async def sender(port: int, run: str, queue: asyncio.Queue, stats: SendStats) -> None:
    conn: list[MllpClient | None] = [None]
    try:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for kind, message in (("NW", nw(run, i)), ("A08", a08(run, i)), ("ORU", oru(run, i))):
                t = time.perf_counter()
                await send_until_aa(port, message, stats, conn)
                stats.latency[kind].append(time.perf_counter() - t)
            stats.done_orders.append(i)
    finally:
        if conn[0] is not None:
            await conn[0].close()


async def api_poller(port: int, run: str, stats: SendStats, counts: collections.Counter, stop: asyncio.Event) -> None:
    """Operator-like reads during the chaos: list by patient, read one order."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        while not stop.is_set():
            await asyncio.sleep(0.3)
            if not stats.done_orders:
                continue
            i = random.choice(stats.done_orders)
            try:
                r = await http.get("/orders", params={"patient": f"M{run}{i}"})
                counts[r.status_code] += 1
                rows = r.json().get("orders", []) if r.status_code == 200 else []
                if rows:
                    counts[(await http.get(f"/orders/{rows[0]['accession']}")).status_code] += 1
            except httpx.HTTPError:
                counts["conn"] += 1


# ------------------------------------------------------------------ checks
async def orders_by_patient(client: Client, run: str) -> dict[str, list[tuple[str, str]]]:
    """PatientID -> [(accession, status)] for this run's orders, from visibility."""
    out: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    query = f"WorkflowType = '{d.ORDER_WORKFLOW}'"  # the soak has its own Temporal server
    async for wf in client.list_workflows(query, page_size=1000):
        sa = wf.typed_search_attributes
        out[sa.get(d.SA_PATIENT_ID) or ""].append((d.accession_from_workflow_id(wf.id) or wf.id, sa.get(d.SA_ORDER_STATUS) or ""))
    return out


async def settle(client: Client, run: str, n: int, timeout_s: float) -> dict[str, list[tuple[str, str]]]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await orders_by_patient(client, run)
        delivered = sum(1 for rows in found.values() for _, s in rows if s == "DELIVERED")
        if (delivered >= n and len(found) >= n) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(2.0)


async def api_get(http: httpx.AsyncClient, path: str) -> dict | list:
    for _ in range(30):
        try:
            r = await http.get(path)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1.0)
    raise RuntimeError(f"API never answered {path}")


async def check_order(http: httpx.AsyncClient, accession: str) -> list[str]:
    order = await api_get(http, f"/orders/{accession}")
    timeline = await api_get(http, f"/orders/{accession}/timeline")
    assert isinstance(order, dict) and isinstance(timeline, dict)
    entries = timeline["entries"]
    problems = []
    if order.get("status") != "DELIVERED":
        problems.append(f"status {order.get('status')}")
    family = (order.get("patient") or {}).get("family_name")
    if family != "Updated":
        problems.append(f"A08 not applied (family {family!r})")
    kinds = collections.Counter(e.get("kind") for e in entries)
    if kinds["NEW_ORDER"] != 1:
        problems.append(f"{kinds['NEW_ORDER']} NEW_ORDER entries")
    final_reports = [e for e in entries if e.get("kind") == "REPORT" and not e.get("exception")]
    if len(final_reports) != 1:
        problems.append(f"{len(final_reports)} REPORT entries")
    return problems


async def ready(stack: Stack, timeout_s: float = 120.0) -> None:
    """Until the MLLP port accepts and the API says Temporal answers (startup is not part of the soak)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", stack.mllp_port)
                writer.close()
                if (await http.get(f"http://127.0.0.1:{stack.api_port}/healthz")).status_code == 200:
                    return
            except (OSError, httpx.HTTPError):
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError("radflow processes did not come up (see the logs in the temp dir)")


# ------------------------------------------------------------------ main
async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--settle-s", type=float, default=600.0, help="how long orders may take to settle after the senders")
    ap.add_argument("--expected-rate", type=float, default=8.0, help="orders/s guess that spreads the kills over the run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite) and print its path")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:5].upper()
    tmp = Path(tempfile.mkdtemp(prefix="radflow-chaos-"))
    stack = Stack(tmp, free_port(), free_port(), free_port(), 0)
    sink = EhrSink()
    await sink.start()
    stack.ehr_port = sink.port
    print(f"chaos soak: {args.orders} orders, {args.kills} kills, {args.concurrency} senders, seed {seed}, dir {tmp}")

    await stack.start_temporal()
    for role in ROLES:
        stack.start_role(role)
    supervisor = asyncio.create_task(stack.supervise())
    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}", data_converter=pydantic_data_converter)
    await ready(stack)

    stats = SendStats()
    api_counts: collections.Counter = collections.Counter()
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(args.orders):
        queue.put_nowait(i)
    stop_poll = asyncio.Event()
    t0 = time.monotonic()
    poller = asyncio.create_task(api_poller(stack.api_port, run, stats, api_counts, stop_poll))
    chaos_task = asyncio.create_task(chaos(stack, args.kills, args.orders / args.expected_rate, rng))
    await asyncio.gather(*(sender(stack.mllp_port, run, queue, stats) for _ in range(args.concurrency)))
    sent_s = time.monotonic() - t0
    if not chaos_task.done():
        print("  senders finished before every kill was spent; waiting for the remaining kills")
    await chaos_task
    stop_poll.set()
    await poller
    print(f"senders done in {sent_s:.0f} s ({args.orders / sent_s:.1f} orders/s, {3 * args.orders} messages AA), "
          f"kills {dict(stack.kills)}; settling...", flush=True)

    found = await settle(client, run, args.orders, args.settle_s)
    settle_s = time.monotonic() - t0 - sent_s
    lost, duplicated, stuck, wrong = [], [], [], []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=10) as http:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            rows = found.get(f"M{run}{i}", [])
            if not rows:
                lost.append(i)
                return
            if len(rows) > 1:
                duplicated.append((i, [a for a, _ in rows]))
            async with sem:
                problems = await check_order(http, rows[0][0])
            if any(p.startswith("status") for p in problems):
                stuck.append((rows[0][0], problems))
            elif problems:
                wrong.append((rows[0][0], problems))

        await asyncio.gather(*(one(i) for i in range(args.orders)))
    accessions = {rows[0][0] for rows in found.values() if rows}
    undelivered = sorted(a for a in accessions if sink.by_accession[a] == 0)
    ehr_dups = sum(c - 1 for a, c in sink.by_accession.items() if a in accessions and c > 1)
    ehr_dup_orders = sum(1 for a, c in sink.by_accession.items() if a in accessions and c > 1)

    stack.stop_all()
    supervisor.cancel()
    sink.close()
    print()
    print(f"orders                 {args.orders} (ADT A08 + ORM NW + ORU F each), seed {seed}")
    print(f"kill -9                {sum(stack.kills.values())}: {dict(stack.kills)}; exits on their own: {dict(stack.own_exits) or 0}")
    print(f"senders                {sent_s:.0f} s, {stats.resends} resends; non-AA answers: {dict(stats.answers) or 0}")
    for kind, values in stats.latency.items():
        ordered = sorted(values)
        p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(f"{kind + ' to AA':<23}p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1]:.1f} s")
    print(f"API reads during run   {dict(api_counts)}")
    print(f"settle                 {settle_s:.0f} s")
    print(f"lost                   {len(lost)}  {lost[:10]}")
    print(f"duplicated             {len(duplicated)}  {duplicated[:5]}")
    print(f"stuck                  {len(stuck)}  {stuck[:5]}")
    print(f"wrong                  {len(wrong)}  {wrong[:5]}")
    print(f"EHR: undelivered       {len(undelivered)}  {undelivered[:10]}")
    print(f"EHR: duplicate ORUs    {ehr_dups} extra copies over {ehr_dup_orders} orders (at-least-once)")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    bad = len(lost) + len(duplicated) + len(stuck) + len(wrong) + len(undelivered)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
