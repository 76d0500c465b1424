"""Structured logging for every radflow process: key=value (or JSON) lines on stderr.

Context goes in `extra=` (see `order_fields`), so lines can be grepped and indexed by
accession or workflow id. Fields that identify a patient are PHI: they are written only
when the record is at DEBUG level, whatever the caller passed.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import temporalio.activity
import temporalio.workflow

from radflow.domain.definitions import order_workflow_id

# Extra fields that carry PHI; dropped from any record above DEBUG.
PHI_FIELDS = frozenset({"patient_name", "mrn", "patient_id", "birth_date", "patient"})

# Attributes every LogRecord has; anything else on the record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def order_fields(accession: str, **more: Any) -> dict[str, Any]:
    """`extra=` for a log line about one order: accession plus its workflow id."""
    return {"accession": accession, "workflow_id": order_workflow_id(accession), **more}


# Extras other libraries add that are noise in a structured line.
_DROPPED = frozenset({"color_message"})
# temporalio attaches its context as one dict; these keys are lifted into top-level fields.
_TEMPORAL_CONTEXT = {"temporal_workflow": ("workflow_id", "run_id", "workflow_type"),
                     "temporal_activity": ("workflow_id", "activity_type", "attempt")}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for k, v in vars(record).items():
        if k in _STANDARD or k in _DROPPED or k.startswith("_"):
            continue
        if k in _TEMPORAL_CONTEXT and isinstance(v, dict):
            fields.update({key: v[key] for key in _TEMPORAL_CONTEXT[k] if key in v})
            continue
        fields[k] = v
    if record.levelno > logging.DEBUG:
        fields = {k: v for k, v in fields.items() if k not in PHI_FIELDS}
    return fields


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [f"ts={ts}", f"level={record.levelname}", f"logger={record.name}", f"msg={_quote(record.getMessage())}"]
        parts += [f"{k}={_quote(v)}" for k, v in _extras(record).items()]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in _extras(record).items()})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "kv", stream: Any = None) -> None:
    """Configure the root logger once per process (replaces earlier handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # temporalio repeats its context dict inside the message; we print it as fields instead.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False
    # uvicorn's own loggers propagate to ours instead of printing their own format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
