"""ORU^R01 build time per report size: is `build_oru` linear? (issue 8 item 1)

    .venv/bin/python bench/oru_build.py [--sizes 1000,2000,4000,8000,16000,32000] [--repeat 5]

For each size N, a report of N lines (each with HL7 delimiters to escape) is built
`--repeat` times; the best time is kept. Prints seconds, microseconds per line and the
ratio of the per-line time to the smallest size's, measured in the same run: a linear
builder stays near 1.0 for every size (the hl7apy builder it replaced went 2 s -> 15 s
from 250 to 2,000 lines, a per-line ratio of ~1.8 and growing).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.definitions import OrderStatus, ReportStatus  # noqa: E402
from domain.hl7.oru import build_oru  # noqa: E402
from domain.order import OrderState  # noqa: E402
from tests.factories import make_order, report  # noqa: E402


def state(lines: int) -> OrderState:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    text = "\n".join(f"Line {i}: findings | measured ^ 3 mm & stable ~ unchanged \\ ok" for i in range(lines))
    return OrderState(order=make_order("BENCH1"), status=OrderStatus.REPORTED, report=report(ReportStatus.FINAL, text),
                      created_at=now, updated_at=now)


def best_of(lines: int, repeat: int) -> float:
    s = state(lines)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        build_oru(s)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000,32000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    base = None
    print(f"{'lines':>8} {'seconds':>9} {'us/line':>9} {'ratio':>6}")
    for n in sizes:
        seconds = best_of(n, args.repeat)
        per_line = seconds / n
        base = base or per_line
        print(f"{n:>8} {seconds:>9.4f} {per_line * 1e6:>9.2f} {per_line / base:>6.2f}")


if __name__ == "__main__":
    main()
