"""Setup's side of revocation by serial and of the console's operator sessions
(shared.credentials).

- A revocation is ``(serial, expires_at)``: the signed credential with that serial is refused by
  every service until it expires anyway (then the entry is pruned). It is written in the
  request's transaction with a NOTIFY on ``credential_revocations`` (shared.revocations), so every
  service applies it when it commits; setup's own key ring at once after the commit.
- An operator session: the console, at sign-in, presents the operator's secret (the operator
  token, checked here by its SHA-256, or an operator credential) and gets a short-lived operator
  credential, never outliving the presented one. Setup remembers its serial so that the console
  may revoke it (and no other credential) at sign-out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.models import CredentialRevocation
from services.setup.models import OperatorSession as SessionRow
from services.setup.settings import SetupSettings
from shared.contracts.credentials import OperatorSession, RevocationRequest, RevokedSerial
from shared.credentials import (
    OPERATOR_PREFIX,
    CredentialClaims,
    decode_credential,
    issue_operator_credential,
)
from shared.db import after_commit
from shared.errors import Invalid, NotFound
from shared.revocations import CREDENTIAL_CHANNEL
from shared.signing import KeyRing, UnknownKey

log = logging.getLogger("edge.setup.credentials")

# A serial revoked without its expiry is listed this long: the longest lifetime setup issues.
LONGEST_LIFETIME_S = 3650 * 86400
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def revoke(session: AsyncSession, ring: KeyRing, serial: str, expires_at: int) -> None:
    """The credential ``serial`` is refused everywhere once this commits (until ``expires_at``)."""
    now = int(time.time())
    await session.execute(
        delete(CredentialRevocation).where(CredentialRevocation.expires_at <= now)
    )
    stmt = insert(CredentialRevocation).values(serial=serial, expires_at=expires_at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CredentialRevocation.serial],
        set_={
            "expires_at": func.greatest(CredentialRevocation.expires_at, stmt.excluded.expires_at)
        },
    )
    await session.execute(stmt)
    payload = json.dumps({"serial": serial, "expires_at": expires_at})
    await session.execute(_NOTIFY, {"channel": CREDENTIAL_CHANNEL, "payload": payload})

    async def apply() -> None:
        ring.revoke({serial: expires_at})

    after_commit(session, apply)
    log.info("credential %s revoked (listed until %s)", serial, expires_at)


async def revoke_requested(
    session: AsyncSession, ring: KeyRing, data: RevocationRequest
) -> RevokedSerial:
    """The operator's ``POST /credentials/revocations``: by serial, or the credential itself."""
    if (data.serial is None) == (data.credential is None):
        raise Invalid("give either serial or credential", field="serial")
    if data.credential is not None:
        claims = _claims(data.credential, ring)
        if claims is None:
            raise Invalid("not a credential setup signed, or already expired", field="credential")
        serial, expires_at = claims.serial, claims.expires_at
    else:
        assert data.serial is not None
        serial = data.serial
        known = await session.get(SessionRow, serial)
        if data.expires_at is not None:
            expires_at = data.expires_at
        elif known is not None:
            expires_at = known.expires_at
        else:
            expires_at = int(time.time()) + LONGEST_LIFETIME_S
    await revoke(session, ring, serial, expires_at)
    return RevokedSerial(serial=serial, expires_at=expires_at)


async def open_operator_session(
    session: AsyncSession, settings: SetupSettings, ring: KeyRing, secret: str, ttl_s: int
) -> OperatorSession:
    """A short-lived operator credential for the operator who presented ``secret``."""
    signer = ring.signer
    assert signer is not None  # setup always signs
    expires_at = int(time.time()) + ttl_s
    digest = settings.operator_digest()
    given = hashlib.sha256(secret.encode()).hexdigest()
    if digest is not None and hmac.compare_digest(given, digest):
        pass
    elif secret.startswith(OPERATOR_PREFIX) and (claims := _claims(secret, ring)) is not None:
        if claims.kind != "operator" or ring.is_revoked(claims.serial):
            raise _refused()
        expires_at = min(expires_at, claims.expires_at)  # never outlives what was presented
    else:
        raise _refused()
    token = issue_operator_credential(signer, expires_at=expires_at)
    issued = decode_credential(token, ring)
    assert issued is not None
    await session.execute(delete(SessionRow).where(SessionRow.expires_at <= int(time.time())))
    session.add(SessionRow(serial=issued.serial, expires_at=expires_at))
    return OperatorSession(token=token, serial=issued.serial, expires_at=expires_at)


async def end_operator_session(session: AsyncSession, ring: KeyRing, serial: str) -> None:
    """The console's sign-out: the session's credential is revoked (only a session's)."""
    row = await session.get(SessionRow, serial)
    if row is None:
        raise NotFound(f"no operator session {serial}", field="serial")
    await session.delete(row)
    await revoke(session, ring, serial, row.expires_at)


def _claims(token: str, ring: KeyRing) -> CredentialClaims | None:
    try:
        return decode_credential(token, ring)
    except UnknownKey:
        return None


def _refused() -> Invalid:
    log.warning("an operator sign-in was refused: not the operator's token nor credential")
    return Invalid(
        "not the operator's token, nor an operator credential still valid", field="secret"
    )


def own_table_loader(app: FastAPI) -> Callable[[], Awaitable[dict[str, int]]]:
    """Setup's watcher reads the revoked serials from its own table."""

    async def load() -> dict[str, int]:
        now = int(time.time())
        query = select(CredentialRevocation.serial, CredentialRevocation.expires_at).where(
            CredentialRevocation.expires_at > now
        )
        async with app.state.sessionmaker() as session:
            rows = (await session.execute(query)).all()
            await session.commit()
        return {row.serial: int(row.expires_at) for row in rows}

    return load
