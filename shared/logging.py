"""Structured logs (JSON lines) carrying the request id; secrets redacted before they are written."""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import datetime, timezone

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_EDGE_TOKEN = re.compile(r"edg_[0-9a-f]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***:***@", text)
    text = _BEARER.sub(r"\1***", text)
    text = _EDGE_TOKEN.sub("edg_***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


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
