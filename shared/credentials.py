"""The services' and the operator's credentials, signed by setup (shared.signing).

- A service's: ``svc_<name>.<expires>.<serial>.<kid>.<signature>``; the service it names gets
  exactly its grants (shared.auth.SERVICE_GRANTS), nothing more. Each service is given its own
  (EDGE_<NAME>_TOKEN or EDGE_CREDENTIAL_FILE), issued by setup (``POST /credentials``,
  ``edgectl credentials issue --service NAME``; ``edgectl up`` issues them at start).
- The operator's: ``opr_<expires>.<serial>.<kid>.<signature>``, every route. Alternatively the
  operator keeps a random token (EDGE_OPERATOR_TOKEN) and the services are given only its
  SHA-256 (EDGE_OPERATOR_TOKEN_SHA256): a service can check it, never produce it.

``expires`` is a unix time in seconds; ``serial`` (16 hex digits, 8 in credentials of before)
names the credential: setup revokes one alone by its serial (``POST /credentials/revocations``,
``edgectl credentials revoke``; a console session's at sign-out) and publishes the revoked serials
on ``GET /keys``, which every verifier keeps (``KeyRing.revoked``): a revoked serial is refused
everywhere once the change reaches them (pushed at once, re-read every EDGE_REVOCATIONS_REFRESH_S).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

from shared.signing import KeyRing, Signer

SERVICE_PREFIX = "svc_"
OPERATOR_PREFIX = "opr_"
DEFAULT_SERVICE_TTL_S = 365 * 86400
DEFAULT_OPERATOR_TTL_S = 30 * 86400
# The services a credential may be issued for (the names of shared.auth.SERVICE_GRANTS).
SIGNABLE_SERVICES = ("setup", "master", "optimizer", "vms", "analysis", "console")


@dataclass(frozen=True)  # no slots=: the edge agent imports this on Python 3.8
class CredentialClaims:
    kind: Literal["service", "operator"]
    name: str | None  # the service's name
    expires_at: int
    serial: str = ""


def issue_service_credential(
    name: str, signer: Signer, *, ttl_s: int = DEFAULT_SERVICE_TTL_S, now: float | None = None
) -> str:
    if name not in SIGNABLE_SERVICES:
        raise ValueError(f"no credential for {name!r}: one of {', '.join(SIGNABLE_SERVICES)}")
    expires = int((time.time() if now is None else now) + ttl_s)
    return signer.sign(f"{SERVICE_PREFIX}{name}.{expires}.{new_serial()}")


def issue_operator_credential(
    signer: Signer,
    *,
    ttl_s: int = DEFAULT_OPERATOR_TTL_S,
    now: float | None = None,
    expires_at: int | None = None,
) -> str:
    """An operator credential expiring after ``ttl_s`` (or at ``expires_at``, unix seconds)."""
    expires = (
        int((time.time() if now is None else now) + ttl_s) if expires_at is None else expires_at
    )
    return signer.sign(f"{OPERATOR_PREFIX}{expires}.{new_serial()}")


def new_serial() -> str:
    return secrets.token_hex(8)


def decode_credential(
    token: str, keys: KeyRing, *, now: float | None = None
) -> CredentialClaims | None:
    """The claims of a signed service or operator credential, or None (not one, bad signature,
    expired). Whether its serial is revoked is the caller's question (``KeyRing.is_revoked``).
    Raises shared.signing.UnknownKey for one naming a key the ring does not know."""
    if not token.startswith((SERVICE_PREFIX, OPERATOR_PREFIX)):
        return None
    body = keys.verify(token)
    if body is None:
        return None
    moment = time.time() if now is None else now
    try:
        if body.startswith(SERVICE_PREFIX):
            name, expires, serial = body[len(SERVICE_PREFIX) :].split(".")
            if name not in SIGNABLE_SERVICES:
                return None
            claims = CredentialClaims("service", name, int(expires), serial)
        else:
            expires, serial = body[len(OPERATOR_PREFIX) :].split(".")
            claims = CredentialClaims("operator", None, int(expires), serial)
    except ValueError:
        return None
    return claims if claims.expires_at > moment else None
