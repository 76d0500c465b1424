"""What TLS costs on the MLLP path: plain vs TLS listener (gateways/mllp.serve_mllp), same run.

    .venv/bin/python bench/mllp_tls.py [--messages 3000] [--connections 300] [--rounds 3]

The handler answers a fixed ACK at once (no Temporal): this isolates the transport. Two phases
per round, each plain then TLS with the same 1 KiB ORM-sized payload:
  stream   N messages over one connection, each waiting for its ACK (a sender's usual pattern)
  connect  C connections, each: connect (+ TLS handshake, server certificate only), one message, close
and prints msgs/s and the ratio TLS/plain for each. Certificates (P-256) are generated at start.
The real gateway does ~1,000 parsed msg/s per connection (docs: CONTEXT), so a stream ratio near
1 at this raw rate means TLS is not what limits ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radflow.gateways.mllp import serve_mllp  # noqa: E402
from radflow.infra.mllp_client import MllpClient  # noqa: E402
from radflow.infra.settings import Settings  # noqa: E402
from radflow.infra.tls import make_client_context, server_context  # noqa: E402
from tests.tls_certs import make_pki  # noqa: E402

ACK = b"MSH|^~\\&|RADFLOW|RAD|CPOE|HOSP|20300101||ACK|1|P|2.4\rMSA|AA|1\r"
PAYLOAD = (b"MSH|^~\\&|CPOE|HOSP|RADFLOW|RAD|20300101||ORM^O01|1|P|2.4\r" + b"OBX|1|TX|||" + b"x" * 900 + b"\r")


async def handler(payload: bytes) -> bytes:
    return ACK


async def stream(port: int, n: int, tls) -> float:  # noqa: ANN001
    async with MllpClient("127.0.0.1", port, timeout_s=10, tls=tls) as client:
        started = time.perf_counter()
        for _ in range(n):
            await client.send(PAYLOAD)
        return n / (time.perf_counter() - started)


async def connect(port: int, n: int, tls) -> float:  # noqa: ANN001
    started = time.perf_counter()
    for _ in range(n):
        async with MllpClient("127.0.0.1", port, timeout_s=10, tls=tls) as client:
            await client.send(PAYLOAD)
    return n / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pki = make_pki(Path(tempfile.mkdtemp(prefix="radflow-bench-tls-")))
    tls_server = server_context(Settings(_env_file=None, mllp_tls_cert=pki.server_cert,  # type: ignore[call-arg]
                                         mllp_tls_key=pki.server_key), "mllp")
    client_tls = make_client_context(pki.ca)
    plain = await serve_mllp(handler, "127.0.0.1", 0)
    secure = await serve_mllp(handler, "127.0.0.1", 0, tls=tls_server)
    ports = plain.sockets[0].getsockname()[1], secure.sockets[0].getsockname()[1]
    results: dict[str, list[float]] = {k: [] for k in ("stream plain", "stream tls", "connect plain", "connect tls")}
    await stream(ports[0], 200, None)  # warm-up
    await stream(ports[1], 200, client_tls)
    for _ in range(args.rounds):
        results["stream plain"].append(await stream(ports[0], args.messages, None))
        results["stream tls"].append(await stream(ports[1], args.messages, client_tls))
        results["connect plain"].append(await connect(ports[0], args.connections, None))
        results["connect tls"].append(await connect(ports[1], args.connections, client_tls))
    for name, values in results.items():
        print(f"{name:<14} {statistics.median(values):9.0f} /s   (rounds: {', '.join(f'{v:.0f}' for v in values)})")
    for phase in ("stream", "connect"):
        ratio = statistics.median(results[f"{phase} tls"]) / statistics.median(results[f"{phase} plain"])
        print(f"ratio {phase} tls/plain: {ratio:.2f}")
    plain.close()
    secure.close()


if __name__ == "__main__":
    asyncio.run(main())
