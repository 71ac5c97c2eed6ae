"""The one rule set that keeps secrets out of logs: URL credentials, bearer tokens, edge tokens.

It lives with the edge programs because the AI packages ship ``edge_ai`` only; the services'
logging (``shared/logging.py``) imports it from here.
"""
from __future__ import annotations

import re

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
