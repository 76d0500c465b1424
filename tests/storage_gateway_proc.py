"""The DICOM gateway (with Storage) as its own process, for the kill -9 test.

Configured by RADFLOW_* environment variables like production; prints `READY <port>`
once listening and runs until SIGTERM (or until killed).
"""

from __future__ import annotations

import asyncio
import signal

from radflow.gateways.dicom.server import start_dicom_gateway
from radflow.infra.settings import Settings
from radflow.service.temporal import connect
from radflow.service.wiring import order_service


async def main() -> None:
    settings = Settings()
    client = await connect(settings)
    gateway = await start_dicom_gateway(settings, order_service(client, settings))
    print(f"READY {gateway.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await gateway.stop()


if __name__ == "__main__":
    asyncio.run(main())
