"""Worker CPU per new order: the stock sandbox runner against radflow's worker, same run.

    .venv/bin/python bench/worker_cost.py [--n 300] [--rounds 2] [--concurrency 16]

Starts its own Temporal dev server (SQLite file, as `radflow dev`) and three worker processes on
their own task queues, all configured as `radflow dev` runs them (payload codec on, the
worklist sync lane, no FHIR lane): "stock" runs the workflows in Temporal's sandbox as the SDK
ships it, "sandbox" in radflow's sandbox mode (RADFLOW_WORKER_SANDBOX=true: the sandbox with the
code cache), "radflow" is `radflow.worker.build_worker` as it is (no sandbox by default). Each round starts N orders per
worker with the exact start request of an ORM NW (OrderService's arguments, without the order
index write, which is the gateway's cost), waits until every order is on that worker's worklist
and the processes are idle, and bills each worker the CPU it used. Prints worker CPU per order
for each, the ratios sandbox/stock and radflow/stock, server CPU per order, and one order's
workflow tasks and history events (the same for all: the runner changes no command). Rounds
alternate the order of the phases so drift hits all; the machine may be shared: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.mllp_ingest import cpu_seconds, drain, orders_of, orm, run_starters, start_raw, stop_process  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.domain import definitions as d  # noqa: E402

VARIANTS = ("stock", "sandbox", "radflow")


def settings_for(address: str, task_queue: str, data_dir: Path):  # noqa: ANN201 - Settings, imported late
    from radflow.infra.settings import Settings
    from radflow.service.codec import ensure_keys_file
    from radflow.service.patient_search import ensure_hmac_key_file

    keys, hmac = data_dir.parent / "codec-keys", data_dir.parent / "search-hmac.key"
    ensure_keys_file(keys)
    ensure_hmac_key_file(hmac)
    return Settings(_env_file=None, temporal_address=address, task_queue=task_queue, data_dir=data_dir,
                    sync_consumers=["worklist"], codec_keys_file=keys, search_hmac_key_file=hmac)


async def _role_worker(variant: str, address: str, task_queue: str, data_dir: str) -> None:
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from radflow.service.temporal import connect
    from radflow.worker import build_worker, workflow_runner

    settings = settings_for(address, task_queue, Path(data_dir))
    client = await connect(settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    # Built only for its own variant: radflow's sandbox mode installs the code cache in the process.
    runner = {"stock": SandboxedWorkflowRunner, "sandbox": lambda: workflow_runner(sandboxed=True)}.get(variant, lambda: None)()
    async with build_worker(client, settings, task_queue=task_queue, runner=runner):
        print("READY", flush=True)
        await stop.wait()


def spawn(variant: str, address: str, task_queue: str, data_dir: Path, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--role", variant, address, task_queue, str(data_dir)],
                            stdout=subprocess.PIPE, stderr=open(log, "ab"), cwd=ROOT, text=True)  # noqa: SIM115
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        proc.kill()
        raise RuntimeError(f"{variant} worker failed to start (see {log})")
    return proc


def worklist_rows(data_dir: Path, run: str) -> int:
    db = data_dir / "worklist.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM worklist WHERE accession LIKE ?", (f"A{run}%",)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


async def start_orders(client, settings, run: str, n: int, concurrency: int) -> None:  # noqa: ANN001
    policy = settings.order_policy()
    await run_starters(orders_of([orm(i, run) for i in range(n)]), concurrency,
                       lambda order, status: start_raw(client, settings.task_queue, order, status, policy))


async def phase(client, settings, proc: subprocess.Popen, server_pid: int, n: int, concurrency: int,  # noqa: ANN001
                pause: float) -> tuple[float, float, str]:
    run = uuid.uuid4().hex[:6].upper()
    w0, s0 = cpu_seconds(proc.pid), cpu_seconds(server_pid)
    await start_orders(client, settings, run, n, concurrency)
    deadline = time.monotonic() + 600
    while worklist_rows(settings.data_dir, run) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await drain([server_pid, proc.pid], pause)
    if (rows := worklist_rows(settings.data_dir, run)) < n:
        raise RuntimeError(f"only {rows} of {n} orders reached the worklist")
    return (cpu_seconds(proc.pid) - w0) / n, (cpu_seconds(server_pid) - s0) / n, run


async def one_history(client, accession: str) -> tuple[int, int]:  # noqa: ANN001
    history = await client.get_workflow_handle(d.order_workflow_id(accession)).fetch_history()
    tasks = sum(1 for e in history.events if e.HasField("workflow_task_completed_event_attributes"))
    return tasks, len(history.events)


async def main(args: argparse.Namespace) -> int:
    from radflow.service.temporal import connect

    tmp = Path(tempfile.mkdtemp(prefix="radflow-worker-cost-"))
    server = DevServer(db_file=tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    await server.start()
    procs: dict[str, subprocess.Popen] = {}
    try:
        setup = {}
        for variant in VARIANTS:
            data = tmp / variant
            data.mkdir()
            setup[variant] = settings_for(server.address, f"cost-{variant}-{uuid.uuid4().hex[:6]}", data)
            procs[variant] = spawn(variant, server.address, setup[variant].task_queue, data, tmp / f"{variant}.log")
        client = await connect(setup["radflow"])
        print(f"dev server (SQLite); a worker process per variant, codec on, worklist lane; N={args.n} "
              f"C={args.concurrency} rounds={args.rounds}; cpus={os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
        for variant in VARIANTS:  # warm-up: imports, first compiles, sticky caches
            await phase(client, setup[variant], procs[variant], server.process.pid, args.warmup, args.concurrency, args.pause)
        worker_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
        server_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
        last_run: dict[str, str] = {}
        for r in range(args.rounds):
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                w, s, run = await phase(client, setup[variant], procs[variant], server.process.pid, args.n,
                                        args.concurrency, args.pause)
                worker_ms[variant].append(w * 1000)
                server_ms[variant].append(s * 1000)
                last_run[variant] = run
                print(f"  round {r + 1} {variant:8s} worker {w * 1000:5.1f} ms/order  server {s * 1000:5.1f} ms/order  "
                      f"(load average {os.getloadavg()[0]:.1f})")
        for variant in VARIANTS:
            tasks, events = await one_history(client, f"A{last_run[variant]}0")
            print(f"{variant:8s} worker CPU per order {sum(worker_ms[variant]) / args.rounds:5.1f} ms   server "
                  f"{sum(server_ms[variant]) / args.rounds:5.1f} ms   one order: {tasks} workflow task(s), {events} history events")
        ratio = sum(worker_ms["radflow"]) / sum(worker_ms["stock"])
        print(f"worker CPU per new order sandbox/stock = {sum(worker_ms['sandbox']) / sum(worker_ms['stock']):.2f}  "
              f"radflow/stock = {ratio:.2f}  "
              f"(PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}; load average {os.getloadavg()[0]:.1f})")
        return 0
    finally:
        for proc in procs.values():
            stop_process(proc)
        server.stop()


def cli() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        try:
            asyncio.run(_role_worker(*sys.argv[2:6]))
        finally:
            os._exit(0)  # temporalio workers may crash at interpreter exit (sdk-python#300)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="orders per worker and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent starters")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--pause", type=float, default=60.0, help="at most this long waiting for server and worker to go idle")
    code = asyncio.run(main(p.parse_args()))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
