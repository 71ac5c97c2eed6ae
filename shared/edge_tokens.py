"""Edge tokens: issued by setup when an edge is registered, verified by any service offline.

Format: ``edg_<nid-hex>.<random>.<hmac>``, the HMAC-SHA256 of ``<nid-hex>.<random>`` under
EDGE_EDGE_TOKEN_SECRET. Setup keeps only a sha256 of the token (to revoke and rotate).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "edg_"


def _sign(body: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_edge_token(nid: str, secret: str) -> str:
    body = f"{nid.encode().hex()}.{secrets.token_urlsafe(18)}"
    return f"{PREFIX}{body}.{_sign(body, secret)}"


def verify_edge_token(token: str, secret: str) -> str | None:
    """The node id the token was issued for, or None when it is not one of ours."""
    if not token.startswith(PREFIX):
        return None
    body, _, signature = token[len(PREFIX):].rpartition(".")
    if not body or not hmac.compare_digest(signature, _sign(body, secret)):
        return None
    try:
        return bytes.fromhex(body.split(".", 1)[0]).decode()
    except ValueError:
        return None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
