"""Metric labels stay bounded and PHI-free whatever a sender puts in MSH-9; DICOM statuses map to their classes;
the SDK metric buffer aggregates like Prometheus expects (counter deltas add up, histograms are cumulative)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from temporalio.runtime import BUFFERED_METRIC_KIND_COUNTER, BUFFERED_METRIC_KIND_GAUGE, BUFFERED_METRIC_KIND_HISTOGRAM

from radflow.infra.metrics import dicom_status_class, hl7_type_of
from radflow.infra.telemetry import TemporalMetricsCollector
from tests.radflow import procs


def test_hl7_type_labels_are_bounded() -> None:
    assert hl7_type_of("MSH|^~\\&|A|B|C|D|20300101||ORM^O01^ORM_O01|1|P|2.3\r") == "ORM^O01"
    assert hl7_type_of("MSH|^~\\&|A|B|C|D|20300101||ADT^A04|1|P|2.3\r") == "ADT^A04"
    # A sender cannot mint series: unknown codes, free text and names collapse into fixed labels.
    assert hl7_type_of("MSH|^~\\&|A|B|C|D|20300101||Doe^John|1|P|2.3\r") == "other"
    assert hl7_type_of("MSH|^~\\&|A|B|C|D|20300101||ZZZ^Z99|1|P|2.3\r") == "other"
    assert hl7_type_of("MSH|^~\\&|A|B|C|D|20300101||ORU^Smith John|1|P|2.3\r") == "ORU"
    assert hl7_type_of("garbage") == "unreadable"
    assert hl7_type_of("MSH|^~\\&|A") == "unreadable"
    assert hl7_type_of("MSH\rPID|1||X") == "unreadable"  # a bare MSH line (tests/gateways/test_hl7_hostile_input.py)
    assert hl7_type_of("MSH|") == "unreadable"
    assert hl7_type_of("MSH|^~\\&\rPID") == "unreadable"


def test_dicom_status_classes() -> None:
    assert dicom_status_class(0x0000) == "success"
    assert dicom_status_class(0xB000) == "warning"
    assert dicom_status_class(0xA700) == "failure"
    assert dicom_status_class(0x0110) == "failure"
    assert dicom_status_class(0xFE00) == "cancel"
    assert dicom_status_class(0xFF00) == "pending"


@dataclass(frozen=True)
class _Metric:
    name: str
    kind: int
    description: str = "d"
    unit: str | None = None


@dataclass(frozen=True)
class _Update:
    metric: _Metric
    value: float
    attributes: dict = field(default_factory=dict)


class _Buffer:
    def __init__(self) -> None:
        self.pending: list[_Update] = []

    def retrieve_updates(self) -> list[_Update]:
        out, self.pending = self.pending, []
        return out


def test_buffered_sdk_metrics_become_prometheus_series() -> None:
    buffer = _Buffer()
    collector = TemporalMetricsCollector(buffer)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    registry.register(collector)
    requests = _Metric("temporal_request", int(BUFFERED_METRIC_KIND_COUNTER))
    slots = _Metric("temporal_worker_task_slots_available", int(BUFFERED_METRIC_KIND_GAUGE))
    latency = _Metric("temporal_workflow_task_execution_latency", int(BUFFERED_METRIC_KIND_HISTOGRAM), unit="duration")
    buffer.pending = [_Update(requests, 2, {"operation": "StartWorkflowExecution"}),
                      _Update(requests, 3, {"operation": "StartWorkflowExecution"}),
                      _Update(slots, 100, {"worker_type": "WorkflowWorker"}),
                      _Update(slots, 98, {"worker_type": "WorkflowWorker"}),
                      _Update(latency, 0.02), _Update(latency, 3.0)]
    first = procs.samples(generate_latest(registry).decode())
    buffer.pending = [_Update(requests, 1, {"operation": "StartWorkflowExecution"})]
    scrape = procs.samples(generate_latest(registry).decode())
    assert procs.value(first, "temporal_request_total", operation="StartWorkflowExecution") == 5
    assert procs.value(scrape, "temporal_request_total", operation="StartWorkflowExecution") == 6
    assert procs.value(scrape, "temporal_worker_task_slots_available", worker_type="WorkflowWorker") == 98
    name = "temporal_workflow_task_execution_latency_seconds"
    assert procs.value(scrape, f"{name}_count") == 2
    assert procs.value(scrape, f"{name}_bucket", le="0.025") == 1
    assert procs.value(scrape, f"{name}_bucket", le="5.0") == 2
    assert procs.value(scrape, f"{name}_bucket", le="+Inf") == 2
    assert abs(procs.value(scrape, f"{name}_sum") - 3.02) < 1e-9
