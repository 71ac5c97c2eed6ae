"""Structured logs (JSON lines) carrying the request id; secrets redacted before they are written."""
from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone

from edge_ai.common.redaction import redact

__all__ = ["configure_logging", "log_fields", "redact", "request_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class RedactingJsonFormatter(logging.Formatter):
    def __init__(self, service: str, secrets: tuple[str, ...], as_json: bool):
        super().__init__()
        self.service = service
        self.secrets = secrets
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        message = redact(message, self.secrets)
        rid = request_id_var.get()
        extra = getattr(record, "fields", None)
        if not self.as_json:
            prefix = f"{datetime.now().strftime('%H:%M:%S')} {record.levelname:<7} {self.service}"
            suffix = f" {redact(json.dumps(extra, default=str), self.secrets)}" if extra else ""
            return f"{prefix} [{rid or '-'}] {message}{suffix}"
        payload = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": message,
        }
        if rid:
            payload["request_id"] = rid
        if extra:
            payload.update(extra)
        return redact(json.dumps(payload, default=str), self.secrets)


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json", secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingJsonFormatter(service, tuple(secrets or ()), fmt == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def log_fields(**fields) -> dict:
    """Structured fields for a log call: ``log.info("msg", extra=log_fields(edge=..))``."""
    return {"fields": fields}
