"""A server span per HTTP request, so an order call's trace starts at its receipt (like MLLP and DICOM).

Named and tagged with the route *template* (`POST /orders/{accession}/cancel`), never the concrete
path or query string: those may carry identifiers or search terms (PHI). Probe and scrape paths
make no spans. Temporal client calls inside the request join the span's trace (radflow/infra/telemetry.py).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from radflow.api.guard import match

tracer = trace.get_tracer("radflow.api")
_UNTRACED = frozenset({"/livez", "/readyz", "/metrics", "/healthz"})


class TraceRequests:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in _UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        template = match("GET" if method == "HEAD" else method, scope.get("path", ""))[0] or "unmatched"
        status: list[int] = []

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with tracer.start_as_current_span(f"HTTP {method} {template}", kind=trace.SpanKind.SERVER,
                                          attributes={"http.request.method": method, "http.route": template}) as span:
            await self.app(scope, receive, send_status)
            if status:
                span.set_attribute("http.response.status_code", status[0])
