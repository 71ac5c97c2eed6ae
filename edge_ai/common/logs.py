"""Logging for the edge programs: text or JSON lines, tokens and camera credentials redacted."""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from edge_ai.common.redaction import redact

__all__ = ["RedactingFormatter", "configure_logging", "redact"]


class RedactingFormatter(logging.Formatter):
    """Text or JSON lines with secrets redacted. ``context`` adds fields of the moment (a request id);
    a record's ``fields`` (``extra={"fields": {...}}``) are added too. The services use it as well."""

    def __init__(
        self,
        name: str,
        secrets: tuple[str, ...],
        as_json: bool,
        *,
        name_key: str = "program",
        context: Callable[[], dict[str, Any]] | None = None,
    ):
        super().__init__()
        self.name = name
        self.secrets = secrets
        self.as_json = as_json
        self.name_key = name_key
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        fields = dict(self.context()) if self.context else {}
        fields.update(getattr(record, "fields", None) or {})
        if self.as_json:
            line = json.dumps(
                {
                    "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "level": record.levelname.lower(),
                    self.name_key: self.name,
                    "logger": record.name,
                    "message": message,
                    **fields,
                },
                default=str,
            )
        else:
            tail = f" {json.dumps(fields, default=str)}" if fields else ""
            line = f"{datetime.now().strftime('%H:%M:%S')} {record.levelname:<7} {self.name} {message}{tail}"
        return redact(line, self.secrets)


def configure_logging(program: str, *, level: str = "INFO", fmt: str = "text", secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(program, secrets, fmt == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line a second per record is noise on an edge box.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
