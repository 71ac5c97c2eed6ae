"""Logging for the edge programs: text or JSON lines, tokens and camera credentials redacted."""

from __future__ import annotations

import logging
import sys

from edge_common.log_format import RedactingFormatter
from edge_common.redaction import redact

__all__ = ["RedactingFormatter", "configure_logging", "redact"]


def configure_logging(
    program: str, *, level: str = "INFO", fmt: str = "text", secrets: tuple[str, ...] = ()
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(program, secrets, fmt == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line a second per record is noise on an edge box.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
