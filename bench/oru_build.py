"""ORU^R01 build time per report size: is `build_oru` linear? (issue 8 item 1)

    .venv/bin/python bench/oru_build.py [--sizes 1000,2000,4000,8000,16000,32000] [--repeat 7]

For each size N, a report of N lines (each with HL7 delimiters to escape) is built
`--repeat` times (sizes interleaved); the best time is kept. Prints seconds, microseconds
per line, and the per-line time as a ratio to the previous (half) size and to the first
size, all measured in the same run. Linear work keeps "x prev" near 1.0 at every doubling;
quadratic work doubles it (the hl7apy builder it replaced went 2 s -> 15 s from 250 to
2,000 lines). On a busy machine the smallest size, which fits in the CPU caches, can be
several times faster per line than the rest: read "x prev" between the larger sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from radflow.domain.definitions import OrderStatus, ReportStatus  # noqa: E402
from radflow.domain.hl7.oru import build_oru  # noqa: E402
from radflow.domain.order import OrderState  # noqa: E402
from tests.factories import make_order, report  # noqa: E402


def state(lines: int) -> OrderState:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    text = "\n".join(f"Line {i}: findings | measured ^ 3 mm & stable ~ unchanged \\ ok" for i in range(lines))
    return OrderState(order=make_order("BENCH1"), status=OrderStatus.REPORTED, report=report(ReportStatus.FINAL, text),
                      created_at=now, updated_at=now)


def measure(sizes: list[int], rounds: int) -> dict[int, float]:
    """Best time per size; rounds interleave the sizes so a busy moment hits all of them alike."""
    states = {n: state(n) for n in sizes}
    best = {n: float("inf") for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            start = time.perf_counter()
            build_oru(states[n])
            best[n] = min(best[n], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000,32000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    best = measure(sizes, args.repeat)
    print(f"{'lines':>8} {'seconds':>9} {'us/line':>9} {'x prev':>7} {'x first':>8}")
    first = prev = None
    for n in sizes:
        per_line = best[n] / n
        first = first or per_line
        step = f"{per_line / prev:>7.2f}" if prev else f"{'-':>7}"
        print(f"{n:>8} {best[n]:>9.4f} {per_line * 1e6:>9.2f} {step} {per_line / first:>8.2f}")
        prev = per_line


if __name__ == "__main__":
    main()
