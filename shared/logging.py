"""Structured logs (JSON lines) carrying the request id; secrets redacted before they are
written."""

from __future__ import annotations

import contextvars
import logging
import sys

from edge_common.log_format import RedactingFormatter
from edge_common.redaction import redact

__all__ = ["NOISY_LOGGERS", "configure_logging", "log_fields", "redact", "request_id_var"]

# Libraries whose INFO lines say nothing to an operator (alembic's plugin set-up, APScheduler's
# "Added job" / "Running job", every HTTP request): WARNING and above only.
NOISY_LOGGERS = (
    "uvicorn.access",
    "httpx",
    "httpcore",
    "apscheduler",
    "alembic.runtime.plugins",
)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


def _request_context() -> dict[str, str]:
    rid = request_id_var.get()
    return {"request_id": rid} if rid else {}


def configure_logging(
    service: str, *, level: str = "INFO", fmt: str = "json", secrets: list[str] | None = None
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(
            service,
            tuple(secrets or ()),
            fmt == "json",
            name_key="service",
            context=_request_context,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def log_fields(**fields) -> dict:
    """Structured fields for a log call: ``log.info("msg", extra=log_fields(edge=..))``."""
    return {"fields": fields}
