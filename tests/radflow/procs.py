"""radflow production commands as separate processes, with their health endpoints (tests only)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


def start(role: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "radflow", role, *args], env=full, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(*procs: subprocess.Popen) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            stop(proc)


async def get(url: str) -> httpx.Response | None:
    """None while nothing listens yet."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            return await http.get(url)
    except httpx.TransportError:
        return None


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, label items) -> value of a Prometheus text scrape."""
    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in scrape.items() if n == name and want <= set(lab))
