"""Structured log lines: context fields present, PHI fields only at DEBUG."""

from __future__ import annotations

import io
import json
import logging

from radflow.infra.logs import setup_logging, order_fields


def _emit(fmt: str, level: str, record_level: int, **extra: object) -> str:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging(level, fmt, stream=stream)
    try:
        logging.getLogger("radflow.test").log(record_level, "order received", extra=extra)
    finally:
        # Give pytest's own capture handlers back to the root logger.
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    return stream.getvalue()


def test_key_value_line_has_accession_and_workflow_id_and_no_phi_at_info() -> None:
    line = _emit("kv", "INFO", logging.INFO, **order_fields("ACC42", mrn="MRN-SECRET", patient_name="Doe^Jane", kind="NW"))
    assert 'msg="order received"' in line and "accession=ACC42" in line and "workflow_id=order-ACC42" in line
    assert "kind=NW" in line
    assert "MRN-SECRET" not in line and "Doe^Jane" not in line


def test_phi_fields_appear_at_debug_only() -> None:
    line = _emit("kv", "DEBUG", logging.DEBUG, **order_fields("ACC42", mrn="MRN-SECRET"))
    assert "mrn=MRN-SECRET" in line


def test_json_lines_parse_and_lift_temporal_context() -> None:
    line = _emit("json", "INFO", logging.WARNING, mrn="MRN-SECRET",
                 temporal_workflow={"workflow_id": "order-ACC7", "run_id": "r1", "namespace": "default"})
    body = json.loads(line)
    assert body["level"] == "WARNING" and body["msg"] == "order received"
    assert body["workflow_id"] == "order-ACC7" and body["run_id"] == "r1"
    assert "mrn" not in body and "temporal_workflow" not in body
