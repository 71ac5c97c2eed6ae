"""The one rule set that keeps secrets out of logs: URL credentials, bearer tokens, edge tokens.

The services' logging (``shared/logging.py``), setup's camera URLs and the edge programs all use
it; it lives in ``edge_common``, which every AI package ships.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Query parameters that carry credentials (cameras often take ?user=admin&password=...).
SECRET_QUERY_NAMES = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "user",
    "username",
    "usr",
    "login",
    "token",
    "access_token",
    "auth",
    "key",
    "apikey",
    "api_key",
    "secret",
    "sig",
)
_QUERY_SECRET = re.compile(
    r"(?i)(?P<head>[?&;](?:" + "|".join(SECRET_QUERY_NAMES) + r")=)[^&;#\s]+"
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_EDGE_TOKEN = re.compile(r"edg_[0-9a-f]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***:***@", text)
    text = _QUERY_SECRET.sub(r"\g<head>***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _EDGE_TOKEN.sub("edg_***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def mask_url(url: str) -> str:
    """A URL fit to show: its user:password part and credential query values as ``***``
    (``rtsp://***:***@cam/live?user=***&password=***``)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all (e.g. "http://[::1"): mask it as text
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = ("***:***@" if ":" in userinfo else "***@") + host
    query = _QUERY_SECRET.sub(r"\g<head>***", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
