"""Run a set of components until SIGINT/SIGTERM (or until one dies), then stop them in reverse.

The process then leaves with `os._exit`: temporalio workers can crash while the
interpreter finalizes, after a clean shutdown (temporalio/sdk-python#300), which would
turn a clean stop into SIGABRT/SIGSEGV.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from radflow.infra.console import print_line
from radflow.infra.heap import freeze_startup_heap
from radflow.components import Component

log = logging.getLogger("radflow.runner")

STOP_TIMEOUT_S = 30.0


def hard_exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


# A step is a component, or a coroutine function that runs once the components before it
# are up and returns the next components (e.g. connect to the Temporal server just started).
Step = Component | Callable[[], Awaitable[list[Component]]]


async def run_components(
    steps: Sequence[Step],
    banner: Callable[[Sequence[Component]], str] | None = None,
    on_second_signal: Callable[[], None] | None = None,
) -> int:
    """Start in order, wait, stop in reverse order. Returns the exit code (0 = clean stop)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def _on_signal(sig: int) -> None:
        received.append(sig)
        if len(received) == 1:
            log.info("stopping", extra={"signal": signal.Signals(sig).name})
            stop.set()
        else:
            # Second Ctrl-C: the user does not want to wait for a clean stop.
            if on_second_signal is not None:
                on_second_signal()
            hard_exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, sig)

    started: list[Component] = []
    code = 0
    try:
        pending = deque(steps)
        while pending and not stop.is_set():
            step = pending.popleft()
            if not hasattr(step, "start"):
                # A step may wait (e.g. for Temporal to come up): SIGINT/SIGTERM must still stop the process.
                following = await _unless_stopped(step(), stop)  # type: ignore[operator]
                if following is None:
                    break
                pending.extendleft(reversed(following))
                continue
            comp: Component = step  # type: ignore[assignment]
            await comp.start()
            started.append(comp)
            log.info("started", extra={"component": comp.name})
        if not stop.is_set():
            freeze_startup_heap()  # everything is loaded: later full collections skip it
            if banner is not None:
                print_line(banner(started))
            code = await _wait(stop, started)
    except Exception:
        log.exception("startup failed")
        code = 1
    finally:
        for comp in reversed(started):
            try:
                await asyncio.wait_for(comp.stop(), timeout=STOP_TIMEOUT_S)
                log.info("stopped", extra={"component": comp.name})
            except Exception:
                log.exception("stop failed", extra={"component": comp.name})
                code = code or 1
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


async def _unless_stopped(coro: Awaitable[list[Component]], stop: asyncio.Event) -> list[Component] | None:
    """The step's result, or None when a stop signal came first (the step is cancelled)."""
    work = asyncio.ensure_future(coro)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([work, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return None


async def _wait(stop: asyncio.Event, components: Sequence[Component]) -> int:
    watched = {c.failed(): c for c in components if c.failed() is not None}
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *watched], return_when=asyncio.FIRST_COMPLETED)
    if stopper in done:
        return 0
    stopper.cancel()
    for task in done:
        comp = watched[task]
        error = task.exception() if not task.cancelled() else None
        log.error("component exited unexpectedly", extra={"component": comp.name, "error": repr(error)})
    return 1


def banner_text(title: str, components: Sequence[Component]) -> str:
    lines = [title]
    for comp in components:
        lines += [f"  {label:<15} {addr}" for label, addr in comp.endpoints()]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)
