"""Real DICOM peers for tests: DCMTK's findscu/echoscu (by absolute path) and a pynetdicom MPPS SCU.

DCMTK runs as a subprocess from asyncio, and the pynetdicom SCU in a thread: the gateway
under test shares this event loop and must keep serving while a peer waits on it.
TCP_NODELAY=1 makes DCMTK disable Nagle on its side too (it reads that variable).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

FINDSCU = "/usr/bin/findscu"
ECHOSCU = "/usr/bin/echoscu"
DUMP2DCM = "/usr/bin/dump2dcm"



def require_dcmtk() -> None:
    """A missing peer is a failure, never a skip: CI must install dcmtk (`apt-get install -y dcmtk`)."""
    missing = [p for p in (FINDSCU, ECHOSCU, DUMP2DCM) if not Path(p).exists()]
    if missing:
        pytest.fail(f"DCMTK not installed ({', '.join(missing)} missing): apt-get install -y dcmtk")

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@dataclass
class FindResult:
    returncode: int
    output: str
    responses: list[Dataset] = field(default_factory=list)


async def run(*args: str, timeout_s: float = 30.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                env=DCMTK_ENV)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    return int(proc.returncode or 0), out.decode("utf-8", "replace")


async def findscu(port: int, keys: list[str], *, aet: str = "MODALITY1", aec: str = "RADFLOW",
                  extra: list[str] | None = None, query_file: Path | None = None) -> FindResult:
    """`findscu -W` with `-k` keys (DCMTK path syntax); responses read back with pydicom."""
    out_dir = Path(tempfile.mkdtemp(prefix="findscu-"))
    try:
        args = [FINDSCU, "-W", "-aet", aet, "-aec", aec, "-X", "-od", str(out_dir)]
        for key in keys:
            args += ["-k", key]
        args += list(extra or [])
        args += ["127.0.0.1", str(port)]
        if query_file is not None:
            args.append(str(query_file))
        code, output = await run(*args)
        responses = [dcmread(p) for p in sorted(out_dir.glob("rsp*.dcm"))]
        return FindResult(code, output, responses)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


async def echoscu(port: int, *, aet: str = "MODALITY1", aec: str = "RADFLOW") -> tuple[int, str]:
    return await run(ECHOSCU, "-v", "-aet", aet, "-aec", aec, "127.0.0.1", str(port))


async def dump2dcm(text: str, path: Path) -> Path:
    """Build a query file from a DCMTK dump (the way sites script findscu)."""
    dump = path.with_suffix(".dump")
    dump.write_text(text, encoding="latin-1")
    code, output = await run(DUMP2DCM, str(dump), str(path))
    assert code == 0, output
    return path
