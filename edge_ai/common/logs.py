"""Logging for the edge programs: text or JSON lines, tokens and camera credentials redacted."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from edge_ai.common.redaction import redact

__all__ = ["configure_logging", "redact"]


class _Formatter(logging.Formatter):
    def __init__(self, program: str, secrets: tuple[str, ...], as_json: bool):
        super().__init__()
        self.program = program
        self.secrets = secrets
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        message = redact(message, self.secrets)
        if self.as_json:
            return json.dumps(
                {
                    "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "level": record.levelname.lower(),
                    "program": self.program,
                    "logger": record.name,
                    "message": message,
                }
            )
        return f"{datetime.now().strftime('%H:%M:%S')} {record.levelname:<7} {self.program} {message}"


def configure_logging(program: str, *, level: str = "INFO", fmt: str = "text", secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(program, secrets, fmt == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line a second per record is noise on an edge box.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
