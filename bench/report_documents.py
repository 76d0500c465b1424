"""Embedded report documents on the HL7 path: cost per ORU with a PDF, against a text-only ORU.

For each PDF size, one ORU^R01 is built the way `deliver_report_hl7` builds it (OBX ED, Base64)
and read back the way the MLLP gateway reads an inbound one (parse + map, incl. Base64 decode
and SHA-256/SHA-1). The baseline is the same order with a 2 KB text report, measured in the same
run; the script prints medians and the ratio. It also prints what the workflow keeps per
document (the Attachment reference, JSON) next to the document's size.

    .venv/bin/python bench/report_documents.py [--sizes 50000,700000] [--runs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radflow.domain.definitions import OrderStatus, ReportStatus  # noqa: E402
from radflow.domain.hl7.mapping import map_message  # noqa: E402
from radflow.domain.hl7.oru import build_oru  # noqa: E402
from radflow.domain.hl7.parse import parse_message  # noqa: E402
from radflow.domain.order import Attachment, OrderState, Report  # noqa: E402
from tests.factories import make_order  # noqa: E402

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def state(report: Report) -> OrderState:
    return OrderState(order=make_order("BENCH1"), status=OrderStatus.REPORTED, report=report, created_at=NOW, updated_at=NOW)


def timed(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def measure(st: OrderState, documents: dict[str, bytes], runs: int) -> tuple[float, float]:
    text, _ = build_oru(st, documents=documents)
    map_message(parse_message(text))  # warm-up: grammar tables, imports
    build = timed(lambda: build_oru(st, documents=documents), runs)
    read = timed(lambda: map_message(parse_message(text)), runs)
    return build, read


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50000,700000")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    base = state(Report(status=ReportStatus.FINAL, text=("No acute findings. " * 16 + "\n") * 7, version=1))
    b_build, b_read = measure(base, {}, args.runs)
    print(f"baseline text ORU (2 KB): build {b_build * 1e3:.2f} ms, parse+map {b_read * 1e3:.2f} ms")
    for size in (int(s) for s in args.sizes.split(",")):
        data = b"%PDF-1.4\n" + os.urandom(size - 9)
        sha = hashlib.sha256(data).hexdigest()
        att = Attachment(sha256=sha, content_type="application/pdf", size=size, sha1_b64="x" * 28, title="Report PDF")
        st = state(Report(status=ReportStatus.FINAL, text="See PDF.", attachments=[att], version=1))
        build, read = measure(st, {sha: data}, args.runs)
        print(f"PDF {size // 1000} KB: build {build * 1e3:.2f} ms ({build / b_build:.1f}x baseline), "
              f"parse+map {read * 1e3:.2f} ms ({read / b_read:.1f}x baseline); "
              f"workflow keeps {len(att.model_dump_json())} bytes for it")


if __name__ == "__main__":
    main()
