"""What metrics and tracing cost per inbound HL7 message, against parsing it (same run, same process).

    .venv/bin/python bench/obs_overhead.py [--n 20000]

Per message, the gateway adds: the type label (MSH-9), the ACK counter and latency histogram, and a
server span. Measured in a tight loop, in microseconds per message, for tracing off (the default: the
OpenTelemetry API's no-op tracer) and on (SDK TracerProvider, a span processor handing every span to an
exporter that drops it), and printed as a ratio of the baseline: parsing the same ORM^O01 with
radflow's parser (what every message costs anyway, before any Temporal round trip, which is ~10-50 ms).
Also prints the time to render one /metrics scrape of this process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from prometheus_client import REGISTRY, generate_latest  # noqa: E402

from radflow.domain.hl7.decode import decode, split_batch  # noqa: E402
from radflow.domain.hl7.parse import parse_message  # noqa: E402
from radflow.infra import metrics  # noqa: E402

ORM = "\r".join([
    "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20300301090000||ORM^O01|CTRL1|P|2.3",
    "PID|1||MRN1^^^GENHOSP^MR||Testpatient^Beta||19800202|M",
    "PV1|1|O",
    "ORC|NW|PL1^CPOE||||||||||0456^Orderer^Olga",
    "OBR|1|PL1^CPOE||CTHEAD^CT head without contrast^L||||||||||||||ACC1|||||||CT",
]) + "\r"


class _Drop(SpanExporter):
    def export(self, spans):  # noqa: ANN001, ANN201
        return SpanExportResult.SUCCESS


def per_message_us(fn, n: int) -> float:  # noqa: ANN001
    for _ in range(min(n, 1000)):  # warm up
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def instrumented(tracer: trace.Tracer):  # noqa: ANN201
    def run() -> None:
        started = time.perf_counter()
        message_type = metrics.hl7_type_of(ORM)
        with tracer.start_as_current_span("hl7 receive", kind=trace.SpanKind.SERVER,
                                          attributes={"hl7.message_type": message_type}) as span:
            span.set_attribute("hl7.ack_code", "AA")
        metrics.observe_hl7(message_type, "AA", started)

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n

    def parse() -> None:  # as the gateway does: decode the frame, split it, parse the message
        decoded = decode(ORM.encode())
        parse_message(split_batch(decoded.text).messages[0], decoded.codec)

    parse_us = per_message_us(parse, max(n // 10, 1000))
    off_us = per_message_us(instrumented(trace.get_tracer("bench")), n)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    trace.set_tracer_provider(provider)
    on_us = per_message_us(instrumented(trace.get_tracer("bench")), n)
    start = time.perf_counter()
    size = len(generate_latest(REGISTRY))
    scrape_ms = (time.perf_counter() - start) * 1e3

    print(f"baseline: parse one ORM^O01          {parse_us:8.1f} us/msg")
    print(f"metrics + span, tracing off          {off_us:8.1f} us/msg  = {off_us / parse_us:.3f} x parse")
    print(f"metrics + span, tracing on (SDK)     {on_us:8.1f} us/msg  = {on_us / parse_us:.3f} x parse")
    print(f"one /metrics render ({size} bytes)   {scrape_ms:8.2f} ms")


if __name__ == "__main__":
    main()
