"""The operator's console session: signed in with the operator token, held server-side.

The console holds no operator credential of its own. At sign-in it hands what the operator typed
(the operator token, or an operator credential) to setup (``POST /operator/sessions``, with the
console's own service credential) and gets a short-lived operator credential for this session
only, expiring with it; every call to another service on the session's behalf carries that
credential. Sign-out revokes it at setup (by serial; retried by the sweep while setup cannot be
reached), and it expires with the session.

The browser gets an httpOnly, SameSite=Strict cookie with a random token (only its SHA-256 is
stored). Every change (any method but GET/HEAD) must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the page reads it from its ``<meta name="csrf-token">``), and an
``Origin``, when the browser sends one, must be the console's own. Expired sessions are refused
(and deleted by a scheduled sweep)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Depends, Request
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.console import models as m
from services.console.settings import ConsoleSettings
from shared.contracts.credentials import OperatorSession
from shared.db import utcnow
from shared.deps import from_app_state
from shared.errors import DomainError, Forbidden, Invalid, Unauthorized
from shared.service_client import ServiceClient

log = logging.getLogger("edge.console.sessions")

COOKIE = "edge_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ConsoleSession:
    token_hash: str
    csrf: str
    credential: str  # the session's operator credential (never sent to the browser)
    expires_at: datetime


class NotTheOperator(Exception):
    """Setup refused what was presented at sign-in (not the operator token nor credential)."""


class SessionExpired(Unauthorized):
    """A cookie came, but its session is over (expired or signed out)."""

    def __init__(self) -> None:
        super().__init__("your session has expired: sign in again", headers={})


class SignedOut(Unauthorized):
    def __init__(self) -> None:
        super().__init__("not signed in: sign in with the operator token", headers={})


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(cookie: str) -> bytes:
    """The key sealing a session's credential: derived from the cookie's token, which the console
    never stores (only its SHA-256, a different derivation)."""
    return hashlib.sha256(b"edge-console-session-credential:" + cookie.encode()).digest()


def seal(cookie: str, credential: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(cookie)).encrypt(nonce, credential.encode(), None)
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(cookie: str, sealed: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return AESGCM(_key(cookie)).decrypt(raw[:12], raw[12:], None).decode()
    except (InvalidTag, ValueError):
        return None


class SessionStore:
    """The console's sessions in its own table (``console.sessions``); routes reach it by
    ``SessionStoreDep``. ``setup``: setup, reached with the console's own credential (its grants:
    open and end operator sessions, and reads)."""

    def __init__(
        self,
        settings: ConsoleSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        setup: ServiceClient,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.setup = setup

    async def open(self, secret: str) -> tuple[str, ConsoleSession]:
        """A new session for the operator who presented ``secret``: the cookie's token and the
        session. Raises NotTheOperator when setup refuses the secret, a DomainError when setup
        cannot be asked."""
        try:
            issued = await self.setup.model(
                "POST",
                "/operator/sessions",
                OperatorSession,
                json={"secret": secret, "ttl_s": self.settings.session_ttl_s},
                what="sign-in at setup",
            )
        except Invalid as exc:
            if exc.field == "secret":
                raise NotTheOperator() from exc
            raise
        token = secrets.token_urlsafe(32)
        row = m.Session(
            token_hash=_hash(token),
            csrf=secrets.token_urlsafe(32),
            expires_at=datetime.fromtimestamp(issued.expires_at, UTC),
            serial=issued.serial,
            credential=seal(token, issued.token),
        )
        async with self.sessionmaker() as db, db.begin():
            db.add(row)
        return token, ConsoleSession(row.token_hash, row.csrf, issued.token, row.expires_at)

    async def close(self, request: Request) -> None:
        """Sign-out: the session ends here at once, and its credential is revoked at setup."""
        token = request.cookies.get(COOKIE)
        if not token:
            return
        async with self.sessionmaker() as db, db.begin():
            serial = await db.scalar(
                update(m.Session)
                .where(m.Session.token_hash == _hash(token))
                .values(ended=True)
                .returning(m.Session.serial)
            )
        if serial is not None:
            await self._revoke(_hash(token), serial)

    async def _revoke(self, token_hash: str, serial: str) -> bool:
        """The session's credential revoked at setup, then the row deleted; False (the row kept,
        ended, for the sweep to try again) when setup cannot be reached."""
        try:
            await self.setup.request(
                "DELETE", f"/operator/sessions/{serial}", allow=(404,), what="sign-out at setup"
            )
        except DomainError as exc:
            log.warning("session credential %s not revoked yet (will retry): %s", serial, exc)
            return False
        async with self.sessionmaker() as db, db.begin():
            await db.execute(delete(m.Session).where(m.Session.token_hash == token_hash))
        return True

    async def sweep_expired(self) -> None:
        """Scheduled: delete sessions past their expiry (their credential expired with them),
        and revoke the credentials of signed-out sessions that setup could not be told of."""
        async with self.sessionmaker() as db, db.begin():
            await db.execute(delete(m.Session).where(m.Session.expires_at <= utcnow()))
            ended = (
                await db.execute(
                    select(m.Session.token_hash, m.Session.serial).where(m.Session.ended)
                )
            ).all()
        for row in ended:
            await self._revoke(row.token_hash, row.serial)

    async def find(self, request: Request) -> ConsoleSession | None:
        """The request's live session; raises SessionExpired when a cookie names none."""
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        async with self.sessionmaker() as db:
            row = await db.get(m.Session, _hash(token))
        if row is None or row.ended or row.expires_at <= utcnow():
            raise SessionExpired()
        credential = unseal(token, row.credential)
        if credential is None:
            raise SessionExpired()
        return ConsoleSession(row.token_hash, row.csrf, credential, row.expires_at)


SessionStoreDep = Annotated[SessionStore, Depends(from_app_state("sessions", SessionStore))]


def same_origin(request: Request) -> bool:
    """No Origin (not a browser's cross-site request), or the console's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def require_session(request: Request, store: SessionStoreDep) -> ConsoleSession:
    """The operator's session; for a change also its CSRF token and the console's own Origin."""
    session = await store.find(request)
    if session is None:
        raise SignedOut()
    if request.method not in SAFE_METHODS:
        if not same_origin(request):
            raise Forbidden("a change must come from the console's own pages (Origin)")
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise Forbidden("missing or wrong CSRF token: reload the page", field="X-CSRF-Token")
    return session


SessionAuth = Annotated[ConsoleSession, Depends(require_session)]
