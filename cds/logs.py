"""Structured log lines (one JSON object per line) with a last line of defence against leaked credentials.

Fields passed with ``extra=`` become keys of the line. Code never logs tokens, but if a string that looks like
a JWT or a bearer credential reaches a log line anyway, it is masked here before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """Mask anything shaped like a JWT or a bearer credential."""
    return _BEARER.sub(r"\1[redacted]", _JWT.sub("[redacted-jwt]", text))


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: stack traces can carry request data.
            line["error_type"] = record.exc_info[0].__name__
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class AccessJsonFormatter(logging.Formatter):
    """gunicorn's access log as JSON lines, built from its atoms (request line, status, duration)."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, dict) else {}
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": "info",
            "logger": "access",
            "remote": atoms.get("h"),
            "method": atoms.get("m"),
            "path": atoms.get("U"),
            "status": atoms.get("s"),
            "bytes": atoms.get("B"),
            "ms": round(int(atoms.get("D", 0) or 0) / 1000, 1),
            "agent": atoms.get("a"),
        }
        return redact(json.dumps(line, default=str, ensure_ascii=False))


def configure_logging(level: str = "INFO") -> None:
    """Send every logger (ours, gunicorn's, werkzeug's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
