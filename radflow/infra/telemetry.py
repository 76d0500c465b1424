"""The Temporal SDK's telemetry in a radflow process: its runtime metrics on our /metrics, its traces in ours.

Metrics: the SDK core can serve Prometheus itself (`PrometheusConfig`), but on a port of its own,
beside the one radflow already serves, and not on the API's app. Instead the process-wide Temporal
`Runtime` records into a `MetricBuffer`, and `TemporalMetricsCollector` drains it into
prometheus_client's registry at every scrape (and every few seconds in between, so the buffer
never fills): one endpoint per process carries both radflow's metrics and the SDK's
(`temporal_request_total`, `temporal_workflow_task_schedule_to_start_latency_seconds`, ...).

Traces: `temporalio.contrib.opentelemetry.TracingInterceptor` on every client (radflow/service/temporal.py)
and so on every worker built from it; the spans go to OpenTelemetry's global tracer provider,
which `configure_tracing` sets up from settings (OTLP over HTTP when `otel_exporter_otlp_endpoint`
is set; off by default).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import REGISTRY, Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

log = logging.getLogger("radflow.telemetry")

BUFFER_SIZE = 100_000
# Seconds; the SDK's latencies (schedule-to-start, execution, RPC) sit between a few ms and minutes.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class TemporalMetricsCollector(Collector):
    """Aggregates the SDK's buffered updates (counter deltas, gauge values, histogram samples)."""

    def __init__(self, buffer: MetricBuffer) -> None:
        self.buffer = buffer
        self._lock = threading.Lock()
        # name -> (kind, description, unit, {sorted label items: value or [bucket counts..., sum, count]})
        self._series: dict[str, tuple[int, str, str, dict[tuple[tuple[str, str], ...], Any]]] = {}

    def drain(self) -> None:
        with self._lock:
            try:
                updates = self.buffer.retrieve_updates()
            except RuntimeError:  # no runtime yet (nothing connected): nothing recorded
                return
            for update in updates:
                self._apply(update)

    def _apply(self, update: Any) -> None:
        metric = update.metric
        name = _prometheus_name(metric.name, metric.unit)
        kind = int(metric.kind)
        entry = self._series.get(name)
        if entry is None:
            entry = self._series[name] = (kind, metric.description or metric.name, metric.unit or "", {})
        series = entry[3]
        labels = tuple(sorted((str(k), str(v)) for k, v in update.attributes.items()))
        value = float(update.value)
        if kind == int(BUFFERED_METRIC_KIND_COUNTER):
            series[labels] = series.get(labels, 0.0) + value
        elif kind == int(BUFFERED_METRIC_KIND_GAUGE):
            series[labels] = value
        else:
            hist = series.get(labels)
            if hist is None:
                hist = series[labels] = [0] * len(BUCKETS) + [0.0, 0]
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    hist[i] += 1
            hist[-2] += value
            hist[-1] += 1

    def collect(self) -> Iterable[Metric]:
        self.drain()
        with self._lock:
            snapshot = [(name, kind, doc, dict(series)) for name, (kind, doc, _unit, series) in self._series.items()]
        for name, kind, doc, series in snapshot:
            if kind == int(BUFFERED_METRIC_KIND_COUNTER):
                family = Metric(name, doc, "counter")
                for labels, value in series.items():
                    family.add_sample(name + "_total", dict(labels), value)
            elif kind == int(BUFFERED_METRIC_KIND_GAUGE):
                family = Metric(name, doc, "gauge")
                for labels, value in series.items():
                    family.add_sample(name, dict(labels), value)
            else:
                family = Metric(name, doc, "histogram")
                for labels, hist in series.items():
                    base = dict(labels)
                    for i, bound in enumerate(BUCKETS):
                        family.add_sample(name + "_bucket", {**base, "le": repr(float(bound))}, hist[i])
                    family.add_sample(name + "_bucket", {**base, "le": "+Inf"}, hist[-1])
                    family.add_sample(name + "_sum", base, hist[-2])
                    family.add_sample(name + "_count", base, hist[-1])
            yield family


def _prometheus_name(name: str, unit: str | None) -> str:
    name = name if name.startswith("temporal_") else f"temporal_{name}"
    if name.endswith("_total"):
        name = name[: -len("_total")]
    if (unit in ("duration", "s", "ms") or name.endswith("_latency")) and not name.endswith("_seconds"):
        name += "_seconds"  # the buffer reports durations in seconds (MetricBufferDurationFormat.SECONDS)
    return name


_runtime: Runtime | None = None
_collector: TemporalMetricsCollector | None = None
_runtime_lock = threading.Lock()


def temporal_runtime() -> Runtime:
    """The process's one Temporal runtime, recording into the buffer /metrics drains."""
    global _runtime, _collector
    with _runtime_lock:
        if _runtime is None:
            buffer = MetricBuffer(BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
            _runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
            _collector = TemporalMetricsCollector(buffer)
            REGISTRY.register(_collector)
        return _runtime


def drain_temporal_metrics() -> None:
    """Empty the SDK's buffer into the registry (a periodic task calls this between scrapes)."""
    if _collector is not None:
        _collector.drain()


def client_interceptors() -> Sequence[Any]:
    """Interceptors every client gets; workers built from the client inherit them."""
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def configure_tracing(settings: Any, service_name: str) -> bool:
    """Export spans over OTLP/HTTP when an endpoint is configured. Returns whether tracing is on."""
    endpoint = getattr(settings, "otel_exporter_otlp_endpoint", "")
    if not endpoint:
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    global _provider
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(endpoint))))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing on", extra={"otlp_endpoint": endpoint, "service_name": service_name})
    return True


_provider: Any = None


def flush_tracing(timeout_s: float = 5.0) -> None:
    """Export the spans still batched: server processes leave with os._exit (radflow/runner.py), which
    skips the SDK's own shutdown hook."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP: a base URL (http://collector:4318) gets the signal path, a full one is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"
