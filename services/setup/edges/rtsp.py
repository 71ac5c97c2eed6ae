"""Camera URLs: checked when given, masked whenever shown (edge_common.redaction.mask_url),
kept whole only encrypted (services.setup.secret_box)."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from edge_common.redaction import mask_url

ALLOWED_SCHEMES = ("rtsp", "rtsps", "http", "https")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``rtsp://user:pass@host/path`` -> (``rtsp://host/path``, user, pass)."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise ValueError(f"must be a camera URL ({', '.join(ALLOWED_SCHEMES)}://host/...)")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return bare, user, password


def with_credentials(bare: str, user: str | None, password: str | None) -> str:
    if not user:
        return bare
    parts = urlsplit(bare)
    secret = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit(
        (parts.scheme, f"{secret}@{parts.netloc}", parts.path, parts.query, parts.fragment)
    )


def masked(url: str | None) -> str | None:
    """The URL fit to show: user:password and credential query values as ``***``."""
    return None if url is None else mask_url(url)
