"""MWL C-FIND latency: radflow's worklist on SQLite and on PostgreSQL vs DCMTK wlmscpfs, same items, same run.

The three servers hold the same 10,000 open scheduled orders, 1 % of them on one station:
radflow's DICOM gateway on the SQLite read model, a second radflow gateway on the PostgreSQL
read model (a throwaway local cluster, fsync on, started like the tests' one), and wlmscpfs.
`/usr/bin/findscu -W` (a new process and association per query, as a modality does) asks
for that station's items with a typical modality key set; we time the whole findscu run,
rotating servers, and print medians and each backend / wlmscpfs (goal <= 0.5, issue 12.2).

The orders are written into radflow's worklist stores through the code path the
`sync_worklist` activity uses (OrderState -> entry_from_state -> store.apply_many), not by
starting 10,000 workflows: at the measured ~100 starts/s that alone would take ~100 s
and measures Temporal, not the worklist. wlmscpfs gets the same items as .wl files.
TCP_NODELAY=1 is set for DCMTK (findscu and wlmscpfs read it); radflow sets it itself.

    .venv/bin/python bench/mwl_cfind.py [--orders 10000] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from radflow.domain.definitions import OrderStatus  # noqa: E402
from radflow.domain.dicom.matching import compile_query  # noqa: E402
from radflow.domain.dicom.mwl import entry_from_state  # noqa: E402
from radflow.domain.order import OrderData, OrderState, Patient, PersonName, Procedure, Schedule, Visit  # noqa: E402
from radflow.gateways.dicom.read_models import describe  # noqa: E402
from radflow.gateways.dicom.server import DicomGateway  # noqa: E402
from radflow.devstack import free_port  # noqa: E402
from radflow.service.ordering import OrderService  # noqa: E402
from radflow.infra.read_model_db import close_all  # noqa: E402
from radflow.infra.settings import Settings  # noqa: E402
from tests.pg_cluster import pg_cluster  # noqa: E402

FINDSCU = "/usr/bin/findscu"
WLMSCPFS = "/usr/bin/wlmscpfs"
ENV = {**os.environ, "TCP_NODELAY": "1"}
STATION = "BENCH_CT1"
SPS = "ScheduledProcedureStepSequence[0]"
KEYS = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyInstanceUID",
    "RequestedProcedureID", "RequestedProcedureDescription", "ReferringPhysicianName",
    f"{SPS}.ScheduledStationAETitle={STATION}", f"{SPS}.Modality", f"{SPS}.ScheduledProcedureStepStartDate",
    f"{SPS}.ScheduledProcedureStepStartTime", f"{SPS}.ScheduledProcedureStepID",
    f"{SPS}.ScheduledProcedureStepDescription",
]


def states(n: int) -> list[OrderState]:
    t0 = datetime(2030, 1, 1, 7, tzinfo=UTC)
    out = []
    for i in range(n):
        station = STATION if i % 100 == 0 else f"BENCH_{i % 37:02d}"
        order = OrderData(
            accession=f"BA{i:07d}",
            placer_number=f"PL{i:07d}",
            patient=Patient(mrn=f"BM{i:07d}", issuer="HOSP", name=PersonName(family=f"Synthetic{i}", given="Pat"),
                            birth_date="19700101", sex="O"),
            visit=Visit(visit_number=f"V{i:07d}"),
            procedure=Procedure(code="CTHEAD", text="CT head", coding_system="L"),
            schedule=Schedule(station_ae=station, modality="CT", start=t0 + timedelta(minutes=7 * i)),
            referring_physician=PersonName(family="Referrer", given="Rae"),
        )
        out.append(OrderState(order=order, status=OrderStatus.SCHEDULED, created_at=t0, updated_at=t0))
    return out


def write_wl_files(entries, folder: Path) -> None:
    """The same items as DCMTK worklist files (<dir>/<called AE>/*.wl plus the lockfile it wants)."""
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    universal = compile_query(Dataset())
    for entry in entries:
        ds = Dataset()
        for keyword in entry.item:
            if keyword == "SpecificCharacterSet":
                continue
            setattr(ds, keyword, [] if isinstance(entry.item[keyword], list) else "")
        universal = compile_query(ds)
        break
    for n, entry in enumerate(entries):
        ds = universal.project(entry.item)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"  # DCMTK's worklist file class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.save_as(folder / f"item{n:05d}.wl", enforce_file_format=True)


def findscu(port: int, extra: list[str] | None = None) -> tuple[float, str]:
    args = [FINDSCU, "-W", "-aet", "MODALITY1", "-aec", "RADFLOW", *(extra or [])]
    for key in KEYS:
        args += ["-k", key]
    args += ["127.0.0.1", str(port)]
    t = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=ENV, check=False)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"findscu failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    return elapsed, out.stdout + out.stderr


def count_responses(port: int) -> int:
    _, text = findscu(port, ["-v"])
    return text.count("Find Response") - text.count("Final Find Response")


def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


async def serve_worklist(settings: Settings, entries) -> DicomGateway:
    """A DICOM gateway (MWL only: it needs no Temporal) over the store these settings select, loaded."""
    t = time.perf_counter()
    gateway = DicomGateway(settings, OrderService(None))  # type: ignore[arg-type]
    gateway.worklist_store.apply_many(entries)
    print(f"loaded {len(entries)} orders into {describe(settings)} in {time.perf_counter() - t:.1f} s")
    await gateway.start()
    return gateway


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for tool in (FINDSCU, WLMSCPFS):
        if not Path(tool).exists():
            print(f"{tool} missing: apt-get install -y dcmtk", file=sys.stderr)
            return 2

    work = Path(tempfile.mkdtemp(prefix="bench-mwl-"))
    wlm: subprocess.Popen | None = None
    gateways: dict[str, DicomGateway] = {}
    try:
        with pg_cluster(durable=True) as pg:
            entries = [entry_from_state(s) for s in states(args.orders)]
            base = dict(dicom_host="127.0.0.1", dicom_port=0)
            gateways["sqlite"] = await serve_worklist(Settings(data_dir=work / "sqlite", **base), entries)
            gateways["postgresql"] = await serve_worklist(
                Settings(data_dir=work / "pg", read_model_url=pg.create_database("bench"), **base), entries)
            t = time.perf_counter()
            write_wl_files(entries, work / "wlm" / "RADFLOW")
            print(f"wrote {len(entries)} .wl files in {time.perf_counter() - t:.1f} s")
            wlm_port = free_port()
            wlm = subprocess.Popen([WLMSCPFS, "-dfp", str(work / "wlm"), str(wlm_port)], env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_listening(wlm_port)
            ports = {name: gw.port for name, gw in gateways.items()} | {"wlmscpfs": wlm_port}

            expected = args.orders // 100
            counts = {name: await asyncio.to_thread(count_responses, port) for name, port in ports.items()}
            print(f"matches for {STATION}: {counts} (expected {expected})")
            if any(c != expected for c in counts.values()):
                print("count mismatch: the comparison would be meaningless", file=sys.stderr)
                return 1

            times: dict[str, list[float]] = {name: [] for name in ports}
            for _ in range(args.runs):
                for name, port in ports.items():
                    elapsed, _ = await asyncio.to_thread(findscu, port)
                    times[name].append(elapsed)
            med = {name: statistics.median(v) for name, v in times.items()}
            print(f"\nfindscu -W, station with {expected} of {args.orders} items, {args.runs} runs each (median, min..max):")
            for name, values in times.items():
                print(f"  {name:10s} {med[name] * 1000:7.1f} ms   ({min(values) * 1000:.1f}..{max(values) * 1000:.1f})")
            for name in gateways:
                ratio = med[name] / med["wlmscpfs"]
                print(f"  ratio radflow {name} / wlmscpfs = {ratio:.2f}  (goal <= 0.50: {'met' if ratio <= 0.5 else 'NOT met'})")
            for gw in gateways.values():
                await gw.stop()
            gateways.clear()
            close_all()
            return 0
    finally:
        if wlm is not None:
            wlm.terminate()
            wlm.wait(10)
        for gw in gateways.values():
            if gw.server is not None:
                await gw.stop()
        close_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
