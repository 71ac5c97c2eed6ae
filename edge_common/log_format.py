"""Log lines of the services and the edge programs: text or JSON, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from edge_common.redaction import redact

__all__ = ["RedactingFormatter"]


class RedactingFormatter(logging.Formatter):
    """Text or JSON lines with secrets redacted. ``context`` adds fields of the moment (a request
    id); a record's ``fields`` (``extra={"fields": {...}}``) are added too."""

    def __init__(
        self,
        name: str,
        secrets: tuple[str, ...],
        as_json: bool,
        *,
        name_key: str = "program",
        context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
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
            clock = datetime.now().strftime("%H:%M:%S")
            line = f"{clock} {record.levelname:<7} {self.name} {message}{tail}"
        return redact(line, self.secrets)
