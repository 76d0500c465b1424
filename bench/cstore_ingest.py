"""C-STORE ingest through radflow vs a plain pynetdicom SCP, Orthanc beside (acceptance 6a),
and the order workflow's history events for one study of that size (6c).

The same N synthetic instances (default 2,000 CT images of 32 KiB pixels) go, in one
association each, from DCMTK `/usr/bin/storescu` to:
  1. a plain pynetdicom SCP whose handler writes `event.encoded_dataset()` to a file
     (the raw fast path, no fsync): the baseline;
  2. radflow: the DICOM gateway with its Storage service (read header, commit the instance's
     bytes + index row in one SQLite WAL transaction synced to disk, then answer success),
     with the aggregator talking to a real Temporal dev server and worker;
  3. Orthanc (Debian package, SQLite index) for reference;
  4. radflow with `dicom_spool_fsync=false` (same commit, not synced): shows how much of the
     gap is durability, and how much is radflow's own work.
TCP_NODELAY on both sides: storescu and Orthanc via DCMTK's TCP_NODELAY=1 variable, the
pynetdicom SCPs via their EVT_CONN_OPEN handler. Each target is run `--runs` times,
alternating; the medians are compared (goal: radflow / plain >= 0.9).

For 6c the study sent to radflow in the last run belongs to a real order; once the order
is ACQUIRED (archive forwarding to Orthanc + C-FIND count included) its history is fetched
and the events from the first image event on are counted (goal <= 20).

    .venv/bin/python bench/cstore_ingest.py [--instances 2000] [--runs 3]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.uid import generate_uid  # noqa: E402
from pynetdicom import AE, evt  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from radflow.domain.definitions import EventSource, OrderStatus, order_workflow_id  # noqa: E402
from radflow.gateways.dicom.server import start_dicom_gateway  # noqa: E402
from radflow.gateways.dicom.storage import storage_contexts  # noqa: E402
from radflow.gateways.dicom.tcp import NODELAY_HANDLER  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.infra.settings import Settings  # noqa: E402
from radflow.service.wiring import order_service  # noqa: E402
from radflow.worker import build_worker  # noqa: E402
from tests.dicom_peers import NODELAY_ENV, STORESCU, Orthanc  # noqa: E402
from tests.dicom_synth import SyntheticStudy  # noqa: E402
from tests.factories import make_order, new_accession  # noqa: E402


def send(port: int, called: str, directory: Path) -> float:
    """One storescu run (one association for every file in the directory): seconds."""
    cmd = [STORESCU, "-aet", "BENCHSCU", "-aec", called, "+sd", "+r", "127.0.0.1", str(port), str(directory)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=NODELAY_ENV)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "Store Failed" in done.stderr:
        raise RuntimeError(f"storescu failed against port {port}: {done.stderr[-1500:]}")
    return elapsed


def plain_scp(port: int, out: Path):
    """The baseline: pynetdicom writing the encoded dataset as received, nothing else."""
    out.mkdir(parents=True, exist_ok=True)

    def on_store(event) -> int:
        with open(out / f"{event.request.AffectedSOPInstanceUID}.dcm", "wb") as f:
            f.write(event.encoded_dataset())
        return 0x0000

    ae = AE(ae_title="PLAIN")
    # Same contexts radflow offers, so both negotiate the same way.
    for cx in storage_contexts():
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[NODELAY_HANDLER, (evt.EVT_C_STORE, on_store)])


def restamp(directory: Path, study: SyntheticStudy) -> SyntheticStudy:
    """A fresh copy of the study (new accession and UIDs, same size): every run is a new study."""
    fresh = SyntheticStudy(new_accession("BENCH"), study_uid=generate_uid(), series=study.series, size=study.size)
    for old in directory.glob("*.dcm"):
        old.unlink()
    fresh.write(directory)
    return fresh


async def history_for_images(client: Client, accession: str, study_uid: str) -> tuple[int, int, dict[str, int]]:
    history = await client.get_workflow_handle(order_workflow_id(accession)).fetch_history()
    events = list(history.events)
    first = next(i for i, e in enumerate(events)
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
                 and study_uid in e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id)
    kinds: dict[str, int] = {}
    for e in events[first:]:
        name = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        kinds[name] = kinds.get(name, 0) + 1
    return len(events), len(events) - first, kinds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=128, help="rows = columns (16-bit pixels)")
    parser.add_argument("--sync-consumers", default="",
                        help="comma-separated SYNC_CONSUMERS for the order (e.g. worklist,fhir); each adds "
                             "one activity per applied change, i.e. to 6c")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="radflow-bench-cstore-"))
    per_series = args.instances // 4
    series = [("CT", per_series)] * 3 + [("CT", args.instances - 3 * per_series)]
    study = SyntheticStudy(new_accession("BENCH"), series=series, size=args.size)
    files_dir = tmp / "files"
    orthanc_dir = tmp / "files-orthanc"
    orthanc_dir.mkdir()
    study.write(files_dir)
    size_kib = sum(p.stat().st_size for p in files_dir.glob("*.dcm")) / args.instances / 1024
    print(f"{args.instances} instances, {size_kib:.1f} KiB each, {args.runs} runs per target, one association per run")

    temporal = DevServer(port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    await temporal.start()
    orthanc = Orthanc(tmp / "orthanc")
    orthanc.start()
    plain_port = free_port()
    plain = plain_scp(plain_port, tmp / "plain")
    client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
    settings = Settings(
        task_queue="bench-cstore", data_dir=tmp / "radflow", dicom_host="127.0.0.1", dicom_port=free_port(),
        dicom_ae_title=orthanc.known_aet, dicom_stable_age_s=2.0, dicom_archive_host="127.0.0.1",
        dicom_archive_port=orthanc.dicom_port, dicom_archive_ae_title=orthanc.aet, dicom_archive_timeout_s=30.0,
        acquisition_consumers=["archive"], report_consumers=["hl7"],
        sync_consumers=[c for c in args.sync_consumers.split(",") if c],
    )
    service = order_service(client, settings)
    nofsync = settings.model_copy(update={"data_dir": tmp / "radflow-nofsync", "dicom_port": free_port(),
                                          "dicom_spool_fsync": False})
    results: dict[str, list[float]] = {"plain": [], "radflow": [], "orthanc": [], "radflow_nofsync": []}
    try:
        async with build_worker(client, settings):
            gateway = await start_dicom_gateway(settings, service)
            gateway_nofsync = await start_dicom_gateway(nofsync, service)
            try:
                for run in range(args.runs):
                    if run:
                        study = restamp(files_dir, study)  # every run a new study for radflow
                    if run == args.runs - 1:  # the measured study of 6c belongs to a real order
                        await service.start_order(make_order(study.accession), EventSource.HL7, "BENCH")
                    # Orthanc gets its own copy, so radflow's forwarding later meets a new study there.
                    restamp(orthanc_dir, study)
                    results["orthanc"].append(await asyncio.to_thread(send, orthanc.dicom_port, orthanc.aet, orthanc_dir))
                    results["plain"].append(await asyncio.to_thread(send, plain_port, "PLAIN", files_dir))
                    results["radflow"].append(await asyncio.to_thread(send, settings.dicom_port, settings.dicom_ae_title, files_dir))
                    results["radflow_nofsync"].append(
                        await asyncio.to_thread(send, nofsync.dicom_port, nofsync.dicom_ae_title, files_dir))
                    print(f"run {run + 1}: " + ", ".join(f"{k} {args.instances / v[-1]:.0f} inst/s" for k, v in results.items()))

                rate = {k: args.instances / statistics.median(v) for k, v in results.items()}
                print(f"\nmedian C-STORE ingest ({args.instances} instances, storescu wall time incl. process + association):")
                print(f"  plain pynetdicom SCP (raw write, no fsync): {rate['plain']:7.1f} inst/s")
                print(f"  radflow Storage SCP (synced spool commit):  {rate['radflow']:7.1f} inst/s")
                print(f"  Orthanc 1.10 (for reference):               {rate['orthanc']:7.1f} inst/s")
                print(f"  radflow without the sync (bench only):      {rate['radflow_nofsync']:7.1f} inst/s")
                print(f"  ratio radflow / plain = {rate['radflow'] / rate['plain']:.2f}  (goal >= 0.90); "
                      f"without the sync {rate['radflow_nofsync'] / rate['plain']:.2f}")
                paired = [p / r for p, r in zip(results["plain"], results["radflow"], strict=True)]
                print("  same-run ratios radflow / plain: " + ", ".join(f"{x:.2f}" for x in paired))

                t0 = time.perf_counter()
                while True:
                    state = await service.get_state(study.accession)
                    if state.status in (OrderStatus.ACQUIRED, OrderStatus.NEEDS_ATTENTION) or time.perf_counter() - t0 > 300:
                        break
                    await asyncio.sleep(0.5)
                waited = time.perf_counter() - t0
                total, for_images, kinds = await history_for_images(client, study.accession, study.study_uid)
                print(f"\norder {study.accession}: {state.status.value} {waited:.1f} s after the last C-STORE "
                      f"(stable age {settings.dicom_stable_age_s:.0f} s + forwarding {state.study.instance_count} instances "
                      f"to Orthanc + C-FIND)")
                print(f"  history events for the images: {for_images} (goal <= 20); whole order history: {total}; "
                      f"sync consumers: {settings.sync_consumers or 'none'}")
                print("  " + ", ".join(f"{k.lower()} {n}" for k, n in sorted(kinds.items())))
                print(f"  Orthanc holds {orthanc.study_instance_count(study.study_uid)} instances of the study")
            finally:
                await gateway.stop()
                await gateway_nofsync.stop()
    finally:
        plain.shutdown()
        orthanc.stop()
        temporal.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()
    # temporalio workers may crash at interpreter exit (sdk-python#300): leave without finalizing.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
