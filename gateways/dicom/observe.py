"""Metrics and trace spans for the DICOM gateway's associations (no PHI: operation names and status codes only).

Every final DIMSE response the gateway sends is counted from pynetdicom's EVT_DIMSE_SENT
notification, so each service (Verification, MWL, MPPS, Storage) is counted without touching its
handler. The handlers that reach Temporal (MPPS N-CREATE/N-SET, C-STORE) run inside a span; the
LoopBridge carries its context to the event loop, so the order workflow's spans join that trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from pynetdicom import evt
from pynetdicom.events import Event

from radflow.infra import metrics

tracer = trace.get_tracer("radflow.dicom")

_TRACED = {evt.EVT_N_CREATE: "N-CREATE", evt.EVT_N_SET: "N-SET", evt.EVT_C_STORE: "C-STORE"}


def on_dimse_sent(event: Event) -> None:
    command = event.message.command_set
    field = int(getattr(command, "CommandField", 0) or 0)
    if field & 0x8000 and "Status" in command:  # responses only (we are the SCP)
        metrics.observe_dimse_response(field, int(command.Status))


def traced(handlers: list[tuple]) -> list[tuple]:
    """The same handler list, with the Temporal-bound handlers wrapped in a server span."""
    out = []
    for entry in handlers:
        operation = _TRACED.get(entry[0])
        out.append(entry if operation is None else (entry[0], _in_span(operation, entry[1]), *entry[2:]))
    return out


def _in_span(operation: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(event: Event, *args: Any) -> Any:
        with tracer.start_as_current_span(f"dicom {operation}", kind=trace.SpanKind.SERVER,
                                          attributes={"dicom.operation": operation}) as span:
            result = handler(event, *args)
            status = result[0] if isinstance(result, tuple) else result
            if isinstance(status, int):
                span.set_attribute("dicom.status", f"0x{status:04X}")
            return result

    return run
