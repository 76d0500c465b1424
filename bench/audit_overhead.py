"""What the audit trail costs an API request: the same reads and changes with the audit off and on.

    .venv/bin/python bench/audit_overhead.py [--n 2000] [--fsync/--no-fsync]

The real app in-process (httpx ASGI transport, API keys on) against a stub order service that
answers at once, so the figure is the audit's share: one durable line (write + fdatasync, in
a thread) per read; an attempt line and an outcome line per change. Prints requests/s for
each mode and the ratio audited/unaudited measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from radflow.api.app import create_app  # noqa: E402
from radflow.domain.definitions import OrderStatus  # noqa: E402
from radflow.domain.order import OperatorResult, OrderState  # noqa: E402
from radflow.infra.settings import Settings  # noqa: E402
from tests.factories import make_order  # noqa: E402

KEY = "bench-operator-0123456789abcdef"


class StubService:
    """Answers every call at once (the bench measures the API, not Temporal)."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.state = OrderState(order=make_order("BENCH1"), status=OrderStatus.SCHEDULED, created_at=now, updated_at=now)

    async def get_state(self, accession: str) -> OrderState:
        return self.state

    async def operator_action(self, accession: str, action, update_id: str = "") -> OperatorResult:
        return OperatorResult(accession=accession, action=action.action, status=OrderStatus.SCHEDULED)


async def run(n: int, audit: bool, fsync: bool, tmp: Path) -> float:
    settings = Settings(data_dir=tmp, api_keys=SecretStr(f"bench:operator+reader:{KEY}"), audit_log=tmp / f"audit-{audit}.jsonl")
    app = create_app(settings, StubService(), audit=audit)  # type: ignore[arg-type]
    if audit and not fsync:
        app.state.audit_trail.fsync = False
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        start = time.perf_counter()
        for i in range(n):
            if i % 10 == 9:
                r = await http.post("/orders/BENCH1/retry", json={"note": "bench"}, headers=auth)
            else:
                r = await http.get("/orders/BENCH1", headers=auth)
            assert r.status_code == 200, r.text
        return n / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        await run(200, False, args.fsync, Path(tmp))  # warm-up
        off = await run(args.n, False, args.fsync, Path(tmp))
        on = await run(args.n, True, args.fsync, Path(tmp))
    print(f"requests (9 reads : 1 change): {args.n}; fsync={args.fsync}")
    print(f"audit off: {off:8.0f} req/s")
    print(f"audit on:  {on:8.0f} req/s")
    print(f"ratio on/off: {on / off:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
