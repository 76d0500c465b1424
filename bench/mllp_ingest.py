"""ORM^O01 NW ingest over MLLP vs raw `client.start_workflow`, on the same dev server, same run.

    .venv/bin/python bench/mllp_ingest.py [--n 600] [--concurrency 16] [--rounds 2] [--codec] [--start]

Starts its own Temporal dev server (SQLite file in a temp dir, as `radflow dev` does), a
worker process and an MLLP gateway process, then alternates two phases per round:
  raw   N `client.start_workflow` of the order workflow, C concurrent starters, with the
        id, id-conflict policy and search attributes OrderService uses (not its memo,
        UI metadata and id-reuse policy: --start measures those)
  mllp  N ORM^O01 NW over MLLP on C concurrent connections; each ACK (AA) arrives only
        after the gateway's durable start
and prints msgs/s, per-message latency p50/p99 and the ratio mllp/raw (goal >= 0.9).
With --codec a third phase per round:
  codec the same over MLLP to a second gateway + worker (own task queue) with payload
        encryption (AES-256-GCM codec) and the PatientID HMAC on, as `radflow dev` runs;
        its ratio codec/raw against the same plain raw baseline (goal >= 0.9).
With --start one more phase per round:
  start OrderService's own start of the order (as the gateway sends it) without the index
        write and without MLLP; mllp/start is what the gateway and the index add.
The machine may be shared: rounds alternate phases so drift hits both, but the figure
is still noisy; compare ratios, not absolute rates, across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
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
from temporalio.common import WorkflowIDConflictPolicy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from radflow.domain import definitions as d  # noqa: E402
from radflow.domain.definitions import EventSource, OrderStatus  # noqa: E402
from radflow.domain.hl7.ack import read_ack  # noqa: E402
from radflow.domain.hl7.decode import decode  # noqa: E402
from radflow.domain.hl7.mapping import map_message  # noqa: E402
from radflow.domain.hl7.parse import parse_message  # noqa: E402
from radflow.domain.order import OrderPolicy, StartOrder  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.infra.mllp_client import MllpClient  # noqa: E402
from radflow.service.ordering import order_search_attributes  # noqa: E402


def orm(i: int, run: str) -> bytes:
    """A ~0.6 KB v2.3 ORM^O01 NW, scheduled, unique accession/placer/MRN per message."""
    obr = ["OBR", "1", f"P{run}{i}^CPOE", f"F{run}{i}^RIS", "CTHEAD^CT head without contrast^L", "R", "20240301085500"]
    obr += [""] * 9 + ["0456^Orderer^Olga^M^^Dr", "", f"A{run}{i}", f"RP{i}", f"SPS{i}", "CT01", "", "", "CT", "", "",
                       "1^^^20300305143000^^R", "", "", "", "^Headache after fall"]
    segs = [
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORM^O01|M{run}{i}|P|2.3",
        f"PID|1||MRN{run}{i}^^^GENHOSP^MR~99887766^^^SSA^SS||Benchpatient^Alpha^Q^Jr^Mr||19750412|F|||1 Synthetic Way^^Springfield^^00000",
        "PV1|1|O|RAD^R101^1^GENHOSP||||0123^Referrer^Rita^^^Dr||||||||||||V5001",
        f"ORC|NW|P{run}{i}^CPOE|F{run}{i}^RIS||SC||1^^^20300305143000^^R||20240301085900|||0456^Orderer^Olga^M^^Dr",
        "|".join(obr),
        "ZDS|1.2.826.0.1.3680043.9.7777.1001^RADFLOW^Application^DICOM",
    ]
    return "\r".join(segs).encode()


def cpu_seconds(pid: int | None = None) -> float:
    """User+system CPU of a process (this one when pid is None), from /proc on Linux."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain(pids: list[int], max_wait_s: float, window_s: float = 0.5, idle_share: float = 0.05) -> None:
    """Wait until the server and worker use under `idle_share` of a core, at most `max_wait_s`."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        before = [cpu_seconds(pid) for pid in pids]
        await asyncio.sleep(window_s)
        used = sum(cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True))
        if used < idle_share * window_s:
            return


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------ child processes
CODEC_KEYS, HMAC_KEY = "codec-keys", "search-hmac.key"


def _child_settings(address: str, task_queue: str, data_dir: str, codec: str = ""):
    from radflow.infra.settings import Settings

    keys = {"codec_keys_file": Path(data_dir) / CODEC_KEYS, "search_hmac_key_file": Path(data_dir) / HMAC_KEY} if codec else {}
    return Settings(_env_file=None, temporal_address=address, task_queue=task_queue, data_dir=Path(data_dir),
                    sync_consumers=[], report_consumers=[], acquisition_consumers=[], **keys)


async def _role_worker(address: str, task_queue: str, data_dir: str, codec: str = "") -> None:
    from radflow.service.temporal import connect
    from radflow.worker import build_worker

    settings = _child_settings(address, task_queue, data_dir, codec)
    client = await connect(settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with build_worker(client, settings, task_queue=task_queue):
        print("READY", flush=True)
        await stop.wait()


async def _role_gateway(address: str, task_queue: str, data_dir: str, port: int, codec: str = "") -> None:
    from radflow.gateways.hl7_gateway import Hl7Gateway
    from radflow.service.temporal import connect
    from radflow.service.wiring import order_service

    settings = _child_settings(address, task_queue, data_dir, codec)
    client = await connect(settings)
    service = order_service(client, settings)  # as `radflow mllp` builds it (order index in the data dir)
    server = await Hl7Gateway(service, settings).serve("127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", flush=True)
    await stop.wait()
    server.close()


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=open(log, "ab"),
                            cwd=ROOT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        raise RuntimeError(f"{args[1]} process failed to start (see {log})")
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ phases
def orders_of(messages: list[bytes]) -> list:
    """The orders the ORM NWs carry (parsed before any clock starts)."""
    orders = []
    for raw in messages:
        dec = decode(raw)
        [cmd] = map_message(parse_message(dec.text, dec.codec), charset=dec.charset)
        assert cmd.order is not None
        orders.append(cmd.order)
    return orders


async def run_starters(orders: list, concurrency: int, start_one) -> tuple[float, list[float]]:  # noqa: ANN001
    """`start_one(order, status)` for every order on `concurrency` concurrent starters: (seconds, latencies)."""
    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for order in orders:
        queue.put_nowait(order)

    async def starter() -> None:
        while not queue.empty():
            order = queue.get_nowait()
            status = OrderStatus.SCHEDULED if order.schedule.is_scheduled() else OrderStatus.ORDERED
            t0 = time.perf_counter()
            await start_one(order, status)
            latencies.append(time.perf_counter() - t0)

    t = time.perf_counter()
    await asyncio.gather(*(starter() for _ in range(concurrency)))
    return time.perf_counter() - t, latencies


async def start_raw(client: Client, task_queue: str, order, status: OrderStatus, policy: OrderPolicy) -> None:  # noqa: ANN001
    """`client.start_workflow` of the order workflow with OrderService's id, policies and search attributes."""
    await client.start_workflow(
        d.ORDER_WORKFLOW,
        StartOrder(order=order, source=EventSource.HL7, control_id=order.accession, policy=policy,
                   baseline=d.ORDER_BASELINE),
        id=d.order_workflow_id(order.accession),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=order_search_attributes(order, status),
    )


async def phase_raw(client: Client, task_queue: str, messages: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    # Parsing happens before the clock starts: the baseline is Temporal's start rate alone.
    policy = OrderPolicy(sync_consumers=[], report_consumers=[], acquisition_consumers=[])
    return await run_starters(orders_of(messages), concurrency,
                              lambda order, status: start_raw(client, task_queue, order, status, policy))


async def phase_start(client: Client, task_queue: str, messages: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """OrderService's own start (memo, UI metadata, REJECT_DUPLICATE), without the index write and MLLP:
    the part of the MLLP path that `raw` leaves out (--start)."""
    from radflow.service.ordering import OrderService

    policy = OrderPolicy(sync_consumers=[], report_consumers=[], acquisition_consumers=[])
    service = OrderService(client, task_queue=task_queue, policy=policy)

    async def start_one(order, status: OrderStatus) -> None:  # noqa: ANN001
        start = StartOrder(order=order, source=EventSource.HL7, control_id=order.accession, policy=policy,
                           baseline=d.ORDER_BASELINE)
        await service._start(order, start, status, order.accession)

    return await run_starters(orders_of(messages), concurrency, start_one)


async def phase_mllp(port: int, messages: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    not_aa = 0
    chunks = [messages[i::concurrency] for i in range(concurrency)]

    async def connection(chunk: list[bytes]) -> None:
        nonlocal not_aa
        async with MllpClient("127.0.0.1", port, timeout_s=60) as mllp:
            for raw in chunk:
                t0 = time.perf_counter()
                ack = read_ack((await mllp.send(raw)).decode("latin-1"))
                latencies.append(time.perf_counter() - t0)
                if ack is None or ack.code != "AA":
                    not_aa += 1

    t = time.perf_counter()
    await asyncio.gather(*(connection(c) for c in chunks if c))
    return time.perf_counter() - t, latencies, not_aa


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="radflow-bench-"))
    server = DevServer(db_file=tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    await server.start()
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    gw_port, codec_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    phases = ["raw", *(["start"] if args.start else []), "mllp", *(["codec"] if args.codec else [])]
    try:
        procs.append(_spawn(["--role", "worker", server.address, task_queue, str(tmp)], tmp / "worker.log"))
        procs.append(_spawn(["--role", "gateway", server.address, task_queue, str(tmp), str(gw_port)], tmp / "gateway.log"))
        if args.codec:
            from radflow.service.codec import ensure_keys_file
            from radflow.service.patient_search import ensure_hmac_key_file

            ensure_keys_file(tmp / CODEC_KEYS)
            ensure_hmac_key_file(tmp / HMAC_KEY)
            codec_queue = task_queue + "-codec"
            procs.append(_spawn(["--role", "worker", server.address, codec_queue, str(tmp), "codec"], tmp / "worker-codec.log"))
            procs.append(_spawn(["--role", "gateway", server.address, codec_queue, str(tmp), str(codec_port), "codec"],
                                tmp / "gateway-codec.log"))
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)

        print(f"dev server (SQLite) {server.address}; worker and MLLP gateway in their own processes; "
              f"N={args.n} C={args.concurrency} rounds={args.rounds}; cpus={os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.1f} (a busy machine makes the figures noisy)")
        warm = [orm(i, "W" + uuid.uuid4().hex[:4]) for i in range(args.warmup)]
        share = len(warm) // len(phases)
        await phase_raw(client, task_queue, warm[:share], args.concurrency)
        await phase_mllp(gw_port, warm[share: 2 * share], args.concurrency)
        if args.codec:
            await phase_mllp(codec_port, warm[2 * share: 3 * share], args.concurrency)
        if args.start:
            await phase_start(client, task_queue, warm[-share:], args.concurrency)

        totals = {phase: [0.0, 0, []] for phase in phases}
        failures = 0
        not_aa = {phase: 0 for phase in phases}
        for r in range(args.rounds):
            for phase in phases[r % len(phases):] + phases[:r % len(phases)]:  # rotate the order each round
                run = f"{phase[0].upper()}{r}{uuid.uuid4().hex[:4]}"
                msgs = [orm(i, run) for i in range(args.n)]
                # Each phase starts on an idle system: the previous phase's workflow tasks must not be
                # processed (and billed) during this one.
                await drain([server.process.pid, *(p.pid for p in procs[::2])], args.pause)
                cpu_before = [cpu_seconds(), *(cpu_seconds(p.pid) for p in procs), cpu_seconds(server.process.pid)]
                if phase == "raw":
                    elapsed, lat = await phase_raw(client, task_queue, msgs, args.concurrency)
                elif phase == "start":
                    elapsed, lat = await phase_start(client, task_queue, msgs, args.concurrency)
                else:
                    elapsed, lat, bad = await phase_mllp(gw_port if phase == "mllp" else codec_port, msgs, args.concurrency)
                    failures += bad
                    not_aa[phase] += bad
                cpu = [after - before for after, before in
                       zip([cpu_seconds(), *(cpu_seconds(p.pid) for p in procs), cpu_seconds(server.process.pid)],
                           cpu_before, strict=True)]
                totals[phase][0] += elapsed
                totals[phase][1] += len(msgs)
                totals[phase][2] += lat
                names = ("bench", "worker", "gateway", "worker-codec", "gateway-codec")[:len(cpu) - 1] + ("server",)
                per_msg = " ".join(f"{name} {c / len(msgs) * 1000:.1f}" for name, c in zip(names, cpu, strict=True))
                print(f"  round {r + 1} {phase:4s}: {len(msgs)} in {elapsed:6.2f} s = {len(msgs) / elapsed:7.1f}/s   "
                      f"p50 {statistics.median(lat) * 1000:6.1f} ms  p99 {pct(lat, 99) * 1000:6.1f} ms   "
                      f"CPU ms/msg: {per_msg}")

        rates = {k: v[1] / v[0] for k, v in totals.items()}
        print()
        labels = {"raw": "raw client.start_workflow", "start": "OrderService start, no index",
                  "mllp": "ORM^O01 NW over MLLP -> AA",
                  "codec": "... with codec + HMAC on"}
        for name, label in ((p, labels[p]) for p in phases):
            lat = totals[name][2]
            print(f"{label:30s} {rates[name]:7.1f} msgs/s   p50 {statistics.median(lat) * 1000:6.1f} ms   "
                  f"p99 {pct(lat, 99) * 1000:6.1f} ms")
        print(f"ratio mllp/raw = {rates['mllp'] / rates['raw']:.2f} (goal >= 0.9); non-AA ACKs: {failures} "
              f"({', '.join(f'{k} {v}' for k, v in not_aa.items() if k not in ('raw', 'start'))})")
        if args.codec:
            print(f"ratio MLLP NW with codec on / raw = {rates['codec'] / rates['raw']:.2f} (goal >= 0.9); "
                  f"codec/mllp = {rates['codec'] / rates['mllp']:.2f} (the codec's own cost)")
        if args.start:
            print(f"ratio start/raw = {rates['start'] / rates['raw']:.2f} (memo + UI metadata); mllp/start = "
                  f"{rates['mllp'] / rates['start']:.2f} (what the gateway and the index add to the start)")

        expected = share * len(phases) + len(phases) * args.n * args.rounds
        count = 0
        for _ in range(100):
            count = (await client.count_workflows(f"WorkflowType = '{d.ORDER_WORKFLOW}'")).count
            if count >= expected:
                break
            await asyncio.sleep(0.2)
        print(f"order workflows in visibility: {count} of {expected} started")
        return 0 if failures == 0 and count == expected else 1
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        server.stop()


def cli() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        role, rest = sys.argv[2], sys.argv[3:]
        coro = _role_worker(*rest) if role == "worker" else _role_gateway(*rest[:3], int(rest[3]), *rest[4:])
        try:
            asyncio.run(coro)
        finally:
            os._exit(0)  # temporalio workers may crash at interpreter exit (sdk-python#300)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=600, help="orders per phase and round")
    p.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent starters / MLLP connections")
    p.add_argument("--rounds", type=int, default=2, help="rounds; phases alternate their order each round")
    p.add_argument("--warmup", type=int, default=42)
    p.add_argument("--codec", action="store_true",
                   help="add a phase through a gateway + worker with payload encryption and PatientID HMAC on")
    p.add_argument("--start", action="store_true",
                   help="a phase of OrderService's own start without the index (what raw leaves out)")
    p.add_argument("--pause", type=float, default=60.0, help="at most this long between phases, waiting for server and worker to go idle")
    code = asyncio.run(main(p.parse_args()))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
