"""Edge tokens: issued by setup, verified by any service offline, revocable, expiring.

Format: ``edg_<nid-hex>.<token-id>.<expires>.<kid>.<signature>``, signed by setup's Ed25519 key
``kid`` (shared.signing: the other services verify with its public key and cannot mint one).
``token-id`` comes from a sequence in setup's database (0 for a token minted outside setup, e.g. a
benchmark), ``expires`` is a unix time in seconds.

Legacy format (accepted only during the migration window, EDGE_LEGACY_CREDENTIALS_UNTIL):
``edg_<nid-hex>.<token-id>.<expires>.<random>.<hmac>``, the HMAC-SHA256 of everything between the
prefix and the last dot under EDGE_EDGE_TOKEN_SECRET.

Revocation: setup keeps, per node id, the lowest token id still valid (``RevocationSet``); a
rotation or a deletion raises it, which kills every older token of that node at once. Every
service that verifies edge tokens keeps that set fresh (see shared.revocations).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from shared.signing import KeyRing, Signer

PREFIX = "edg_"
DEFAULT_TTL_S = 30 * 86400


@dataclass(frozen=True)  # no slots=: the edge agent imports this on Python 3.8
class EdgeClaims:
    nid: str
    token_id: int
    expires_at: int


def _sign(body: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_edge_token(
    nid: str,
    signer: Signer | str,
    *,
    token_id: int = 0,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A token for node ``nid``: signed by setup's key, or (a str: the legacy HMAC secret) in the
    old format, which services accept only during the migration window."""
    expires = int((time.time() if now is None else now) + ttl_s)
    claims = f"{nid.encode().hex()}.{token_id}.{expires}"
    if isinstance(signer, Signer):
        return signer.sign(PREFIX + claims)
    body = f"{claims}.{secrets.token_urlsafe(12)}"
    return f"{PREFIX}{body}.{_sign(body, signer)}"


def _claims(parts: list[str], now: float | None) -> EdgeClaims | None:
    try:
        nid = bytes.fromhex(parts[0]).decode()
        token_id, expires = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return EdgeClaims(nid, token_id, expires)


def decode_edge_token(
    token: str,
    keys: KeyRing | str | None,
    *,
    legacy_secret: str | None = None,
    now: float | None = None,
) -> EdgeClaims | None:
    """The token's claims, or None when it is not one of ours, malformed or expired.

    ``keys``: the public keys (a signed token); a str is a legacy HMAC secret (same as
    ``legacy_secret``: an old-format token is checked against it, if given). Raises
    shared.signing.UnknownKey for a signed token naming a key the ring does not know."""
    if not token.startswith(PREFIX):
        return None
    if isinstance(keys, str):
        keys, legacy_secret = None, keys
    if keys is not None:
        body = keys.verify(token)
        if body is not None:
            parts = body[len(PREFIX) :].split(".")
            return _claims(parts, now) if len(parts) == 3 else None
        if legacy_secret is None:
            return None
    if legacy_secret is None:
        return None
    body, _, signature = token[len(PREFIX) :].rpartition(".")
    if not body or not hmac.compare_digest(signature, _sign(body, legacy_secret)):
        return None
    parts = body.split(".")
    if len(parts) != 4:  # the old, permanent format: no longer accepted
        return None
    return _claims(parts, now)


def verify_edge_token(token: str, keys: KeyRing | str) -> str | None:
    """The node id the token was issued for, or None (signature and expiry only, no revocation)."""
    claims = decode_edge_token(token, keys)
    return None if claims is None else claims.nid


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class RevocationSet:
    """Per node id, the lowest token id still valid. A node absent from it has none revoked."""

    min_token_id: dict[str, int] = field(default_factory=dict)
    loaded: bool = False  # a full list has been read at least once

    def allows(self, claims: EdgeClaims) -> bool:
        return claims.token_id >= self.min_token_id.get(claims.nid, 0)

    def apply(self, nid: str, min_token_id: int) -> None:
        """One change (pushed or read): raising only, so a late or repeated message is harmless."""
        if min_token_id > self.min_token_id.get(nid, 0):
            self.min_token_id[nid] = min_token_id

    def replace(self, entries: dict[str, int]) -> None:
        """A full list read: merged (a push newer than the read is kept)."""
        for nid, min_token_id in entries.items():
            self.apply(nid, min_token_id)
        self.loaded = True
