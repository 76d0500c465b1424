"""Failover: orders through two of each radflow process while kill -9 hits one process of each kind.

    .venv/bin/python bench/failover.py [--orders 300] [--concurrency 30] [--kills-per-kind 1] [--seed S] [--keep]

One Temporal dev server (SQLite file) and one PostgreSQL (a throwaway cluster, tests/pg_cluster.py)
shared by 2 `radflow worker`, 2 `radflow mllp`, 2 `radflow dicom` (gateway ids gw-a / gw-b, each
its own spool and archive queue) and 2 `radflow api`, each a separate process with its own data
directory (bench/failover_cluster.py). Destinations: an EHR MLLP sink, the Medplum-based test FHIR
server, Orthanc as the archive.

Per order (bench/failover_senders.py; senders retry like real ones, to the other process of the pair):
ADT^A04, ORM^O01 NW without accession, MWL C-FIND by patient, MPPS N-CREATE IN PROGRESS, C-STORE
of a small synthetic instance, MPPS N-SET COMPLETED, then (once the API shows the images
acquired, as a radiologist reads only what is there) ORU^R01 F by placer number.
While the orders flow, each kind (worker, mllp, dicom, api) is hit by `kill -9` of one of its two
processes at a random point of the run and restarted after a short pause.

Then it waits for the orders to settle and checks them (bench/failover_checks.py): lost, duplicated,
stuck, wrong; duplicate deliveries at the sinks (counted, at-least-once). Exit status 0 only when
every order is DELIVERED exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import signal
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from bench.failover_checks import Findings, OrderTrace, check  # noqa: E402
from bench.failover_cluster import MEMBERS, ROLES, Cluster, EhrSink, cpu_seconds  # noqa: E402
from bench.failover_senders import (  # noqa: E402
    STATION, ApiReader, GaveUp, Hl7Sender, Modality, SendStats, adt_a04, oru_final, orm_nw,
)
from radflow.dicom_synth import SyntheticStudy  # noqa: E402
from radflow.service.temporal import DATA_CONVERTER  # noqa: E402
from tests.dicom_peers import Orthanc  # noqa: E402
from tests.fhir_server.fixture import FhirTestServer  # noqa: E402
from tests.gateways.dicom.mpps_scu import completed_refs, in_progress  # noqa: E402
from tests.pg_cluster import pg_cluster  # noqa: E402

ACQUIRED_OR_LATER = {"ACQUIRED", "REPORTED", "DELIVERED", "COMPLETED"}


@dataclass
class Config:
    orders: int = 300
    concurrency: int = 24  # orders driven at once
    instances: int = 1  # per order
    kills_per_kind: int = 1
    seed: int | None = None
    settle_s: float = 300.0  # after the senders finished, how long orders may take to reach their final state
    sender_deadline_s: float = 240.0  # one request without a definite answer this long: the sender gives up
    root: Path | None = None  # where processes keep their data and logs (default: a temp dir)


@dataclass
class Report:
    config: Config
    seed: int
    findings: Findings
    kills: dict[str, int]
    own_exits: dict[str, int]
    recovery_s: list[tuple[str, float]]
    drive_s: float
    settle_s: float
    retries: dict[str, int]
    failovers: int
    root: Path
    cpu_s: dict[str, float] = field(default_factory=dict)
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)  # step -> (p50, p95) seconds
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.findings.ok and not self.own_exits

    def lines(self) -> list[str]:
        f = self.findings
        rec = ", ".join(f"{n} {s:.1f} s" for n, s in self.recovery_s)
        return [
            f"orders                 {f.orders} (ADT + ORM NW + MWL + MPPS + C-STORE x{self.config.instances} + ORU F), "
            f"concurrency {self.config.concurrency}, seed {self.seed}",
            f"kill -9                {sum(self.kills.values())}: {self.kills}; exits on their own: {self.own_exits or 0}",
            f"kill -> ready again    {rec}",
            f"senders                {self.drive_s:.0f} s ({f.orders / max(self.drive_s, 1e-9):.1f} orders/s); "
            f"retries {self.retries or 0}; failovers {self.failovers}",
            f"settle                 {self.settle_s:.0f} s; statuses {dict(f.statuses)}",
            "steps (p50 / p95)      " + "; ".join(f"{k} {a:.1f} / {b:.1f} s" for k, (a, b) in self.phases.items()),
            f"CPU seconds            {self.cpu_s} (current incarnations)",
            f"lost                   {len(f.lost)}  {f.lost[:5]}",
            f"duplicated             {len(f.duplicated)}  {f.duplicated[:5]}",
            f"stuck                  {len(f.stuck)}  {f.stuck[:5]}",
            f"wrong                  {len(f.wrong)}  {f.wrong[:5]}",
            f"sender failures        {len(f.sender_failures)}  {f.sender_failures[:5]}",
            f"unmatched items        {f.unmatched}",
            f"EHR (MLLP sink)        undelivered {len(f.ehr_undelivered)}; duplicate ORUs {f.ehr_extra_copies} "
            f"over {f.ehr_orders_with_copies} orders (at-least-once)",
            f"FHIR server            missing {len(f.fhir_missing)} {f.fhir_missing[:3]}; duplicate resources "
            f"{len(f.fhir_duplicate_resources)} {f.fhir_duplicate_resources[:3]}; DiagnosticReport versions "
            f"{f.fhir_report_versions} for {f.orders} reports",
            f"archive (Orthanc)      incomplete studies {len(f.archive_missing)} {f.archive_missing[:3]}; "
            f"duplicate receptions {f.archive_extra_receptions} (at-least-once)",
            *self.notes,
        ]

    def as_dict(self) -> dict:
        f = self.findings
        return {"orders": f.orders, "seed": self.seed, "lost": len(f.lost), "duplicated": len(f.duplicated),
                "stuck": len(f.stuck), "wrong": len(f.wrong), "sender_failures": len(f.sender_failures),
                "unmatched": f.unmatched, "ehr_undelivered": len(f.ehr_undelivered),
                "ehr_duplicate_orus": f.ehr_extra_copies, "fhir_missing": len(f.fhir_missing),
                "fhir_duplicate_resources": len(f.fhir_duplicate_resources),
                "fhir_report_versions": f.fhir_report_versions, "archive_incomplete": len(f.archive_missing),
                "archive_duplicate_receptions": f.archive_extra_receptions, "kills": self.kills,
                "own_exits": self.own_exits, "drive_s": round(self.drive_s, 1), "settle_s": round(self.settle_s, 1),
                "statuses": dict(f.statuses), "retries": self.retries, "cpu_s": self.cpu_s,
                "phases": {k: [round(a, 2), round(b, 2)] for k, (a, b) in self.phases.items()}, "ok": self.ok}


@dataclass
class Run:
    """Shared state of one run: the cluster, the senders' stats, how far the orders got."""

    cluster: Cluster
    config: Config
    run_id: str
    stats: SendStats
    pool: ThreadPoolExecutor
    http: httpx.AsyncClient
    acked: int = 0  # NW acknowledged so far: the chaos schedule follows it

    def api(self, i: int) -> ApiReader:
        reader = ApiReader(self.cluster.ports("api"), self.stats, self.config.sender_deadline_s, self.http)
        reader.current = i % 2
        return reader


async def drive_order(run: Run, trace: OrderTrace, lane: int) -> None:
    """One order through every protocol, as the EHR, the modality and the reporting system send it."""
    i, cfg, cluster = trace.i, run.config, run.cluster
    hl7 = Hl7Sender(cluster.ports("mllp"), run.stats, cfg.sender_deadline_s)
    # One modality per concurrent lane, each its own AE title (a site with many scanners); all
    # scheduled on one station, so the worklist query is the same for every order.
    modality = Modality(cluster.ports("dicom"), run.stats, cfg.sender_deadline_s, run.pool, aet=f"MOD{lane:02d}")
    hl7.current = modality.current = i % 2  # half the traffic prefers each process of a pair
    api = run.api(i)
    t = time.monotonic()

    def phase(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        trace.phases[name] = now - t
        t = now

    try:
        await hl7.send(adt_a04(trace.mrn, i, f"A{run.run_id}{i}"), f"A04 {trace.mrn}")
        await hl7.send(orm_nw(trace.mrn, i, trace.placer, f"N{run.run_id}{i}"), f"NW {trace.mrn}")
        trace.nw_acked = True
        run.acked += 1
        phase("ADT+NW acked")
        # A modality asks the worklist now and then, not in a tight loop (each C-FIND costs the gateway).
        await asyncio.sleep(0.5)
        items = await until(lambda: modality.worklist(trace.mrn), bool, cfg.sender_deadline_s, 1.0)
        if not items:
            raise GaveUp("never on the worklist")
        phase("NW AA -> on worklist")
        trace.worklist_items = len(items)
        item = items[0]
        trace.accession, trace.study_uid = item.accession, item.study_uid
        mpps_uid = generate_uid()
        await modality.mpps_create(mpps_uid, in_progress(accession=item.accession, study_uid=item.study_uid,
                                                         patient_id=trace.mrn, station=STATION))
        study = SyntheticStudy(item.accession, study_uid=item.study_uid, patient_id=trace.mrn,
                               series=[("CT", cfg.instances)], size=16)
        images = list(study.datasets())
        trace.sop_uids = [str(im.SOPInstanceUID) for im in images]
        await modality.store(images)
        await modality.mpps_set(mpps_uid, completed_refs({str(images[0].SeriesInstanceUID): trace.sop_uids}))
        phase("MPPS+C-STORE+MPPS")
        order = await until(lambda: api.order(item.accession), lambda o: o["status"] in ACQUIRED_OR_LATER,
                            cfg.sender_deadline_s, 2.0)
        if order["status"] not in ACQUIRED_OR_LATER:
            raise GaveUp(f"{item.accession} never ACQUIRED ({order['status']})")
        phase("-> ACQUIRED (API)")
        await hl7.send(oru_final(trace.mrn, i, trace.placer, f"R{run.run_id}{i}"), f"ORU {trace.mrn}")
        phase("ORU F acked")
        trace.done = True
    except GaveUp as err:
        trace.error = str(err)


def percentiles(traces: list[OrderTrace]) -> dict[str, tuple[float, float]]:
    by_phase: dict[str, list[float]] = {}
    for t in traces:
        for name, seconds in t.phases.items():
            by_phase.setdefault(name, []).append(seconds)
    out = {}
    for name, values in by_phase.items():
        values.sort()
        out[name] = (values[len(values) // 2], values[min(len(values) - 1, int(0.95 * len(values)))])
    return out


async def until(fetch, ok, timeout_s: float, every_s: float):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout_s
    while True:
        result = await fetch()
        if ok(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every_s)


async def chaos(run: Run, rng: random.Random, drive_done: asyncio.Event) -> None:
    """kill -9 one process of each kind when the run reaches a random share of its orders; restart it."""
    n = run.config.orders
    plan = sorted((rng.uniform(0.1, 0.8) * n, role) for role in ROLES for _ in range(run.config.kills_per_kind))
    restarts: list[asyncio.Task] = []
    busy: dict[str, asyncio.Task] = {}
    for at, role in plan:
        while run.acked < at and not drive_done.is_set():
            await asyncio.sleep(0.1)
        if role in busy:  # never both processes of a pair down on purpose
            await busy[role]
        name = f"{role}-{rng.choice(MEMBERS)}"
        print(f"  {run.acked:4d} NW acked: kill -9 {name}", flush=True)
        task = asyncio.create_task(run.cluster.kill_and_restart(name, rng.uniform(0.5, 3.0)))
        busy[role] = task
        restarts.append(task)
    await asyncio.gather(*restarts)


async def settle(run: Run, traces: list[OrderTrace], timeout_s: float) -> None:
    """Until every driven order is DELIVERED (read through the API), or the time is up."""
    pending = [t for t in traces if t.accession]
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        sem = asyncio.Semaphore(8)

        async def status(t: OrderTrace) -> str:
            async with sem:
                try:
                    return (await run.api(t.i).order(t.accession))["status"]
                except GaveUp:
                    return "?"

        statuses = await asyncio.gather(*(status(t) for t in pending))
        pending = [t for t, s in zip(pending, statuses, strict=True) if s != "DELIVERED"]
        if pending:
            await asyncio.sleep(2.0)


async def run_failover(cfg: Config) -> Report:
    seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    root = cfg.root or Path(tempfile.mkdtemp(prefix="radflow-failover-"))
    run_id = uuid.uuid4().hex[:4].upper()
    ehr = EhrSink()
    await ehr.start()
    fhir = FhirTestServer(data_file=root / "fhir" / "store.json", log_file=root / "fhir.log")
    (root / "fhir").mkdir(parents=True, exist_ok=True)
    orthanc = Orthanc(root / "orthanc")
    with pg_cluster() as pg:
        await fhir.start(timeout_s=120)
        await asyncio.to_thread(orthanc.start)
        cluster = Cluster(root, pg.create_database("failover"), ehr.port, fhir.base_url,
                          ("127.0.0.1", orthanc.dicom_port, orthanc.aet))
        pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="modality")
        supervisor: asyncio.Task | None = None
        try:
            await cluster.start()
            supervisor = asyncio.create_task(cluster.supervise())
            from temporalio.client import Client

            client = await Client.connect(cluster.temporal.address, data_converter=DATA_CONVERTER)  # type: ignore[union-attr]
            async with httpx.AsyncClient(timeout=30.0) as http:
                run = Run(cluster, cfg, run_id, SendStats(), pool, http)
                traces = [OrderTrace(i, f"FO{run_id}{i:04d}", f"PF{run_id}{i:04d}") for i in range(cfg.orders)]
                drive_done = asyncio.Event()
                chaos_task = asyncio.create_task(chaos(run, rng, drive_done))
                queue: asyncio.Queue[OrderTrace] = asyncio.Queue()
                for t in traces:
                    queue.put_nowait(t)

                async def lane(n: int) -> None:
                    while not queue.empty():
                        await drive_order(run, queue.get_nowait(), n)

                t0 = time.monotonic()
                await asyncio.gather(*(lane(n) for n in range(cfg.concurrency)))
                drive_s = time.monotonic() - t0
                drive_done.set()
                await chaos_task
                await settle(run, traces, cfg.settle_s)
                settle_s = time.monotonic() - t0 - drive_s
                cpu = cluster.cpu_by_role()
                cpu["fhir server"] = cpu_seconds(fhir.process.pid) if fhir.process else 0.0
                cpu["orthanc"] = cpu_seconds(orthanc.process.pid) if orthanc.process else 0.0
                usage = resource.getrusage(resource.RUSAGE_SELF)
                cpu["senders (this process)"] = round(usage.ru_utime + usage.ru_stime, 1)
                findings = await check(client, run.api(0), traces, cfg.instances, ehr.by_accession, fhir.base_url,
                                       orthanc)
            return Report(cfg, seed, findings, dict(cluster.kills), dict(cluster.own_exits), list(cluster.recovery_s),
                          drive_s, settle_s, dict(run.stats.retries), run.stats.failovers, root, cpu, percentiles(traces))
        finally:
            if supervisor is not None:
                supervisor.cancel()
            cluster.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            fhir.close()
            orthanc.stop()
            ehr.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Config()
    ap.add_argument("--orders", type=int, default=defaults.orders)
    ap.add_argument("--concurrency", type=int, default=defaults.concurrency)
    ap.add_argument("--instances", type=int, default=defaults.instances, help="C-STORE instances per order")
    ap.add_argument("--kills-per-kind", type=int, default=defaults.kills_per_kind)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--settle-s", type=float, default=defaults.settle_s)
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    ap.add_argument("--keep", action="store_true", help="keep the data and logs of every process and print where")
    args = ap.parse_args()
    cfg = Config(orders=args.orders, concurrency=args.concurrency, instances=args.instances,
                 kills_per_kind=args.kills_per_kind, seed=args.seed, settle_s=args.settle_s)
    # SIGTERM (a CI timeout, `timeout`) unwinds like Ctrl-C, so every process started is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    t0 = time.monotonic()
    report = asyncio.run(run_failover(cfg))
    print("\n".join(report.lines()))
    print(f"wall time              {time.monotonic() - t0:.0f} s (startup, drive, settle, checks)")
    if args.json:
        print(json.dumps(report.as_dict()))
    if args.keep:
        print(f"kept: {report.root}")
    else:
        shutil.rmtree(report.root, ignore_errors=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
