"""The operator's console session: signed in with the operator token, held server-side.

The browser gets an httpOnly, SameSite=Strict cookie with a random token (only its SHA-256 is
stored). Every change (any method but GET/HEAD) must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the page reads it from its ``<meta name="csrf-token">``), and an
``Origin``, when the browser sends one, must be the console's own. Expired sessions are refused
(and deleted by a scheduled sweep)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.console import models as m
from services.console.settings import ConsoleSettings
from shared.db import utcnow
from shared.deps import from_app_state
from shared.errors import Forbidden, Unauthorized

COOKIE = "edge_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ConsoleSession:
    token_hash: str
    csrf: str


class SessionExpired(Unauthorized):
    """A cookie came, but its session is over (expired or signed out)."""

    def __init__(self) -> None:
        super().__init__("your session has expired: sign in again", headers={})


class SignedOut(Unauthorized):
    def __init__(self) -> None:
        super().__init__("not signed in: sign in with the operator token", headers={})


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(settings: ConsoleSettings, given: str) -> bool:
    expected = settings.operator_token.get_secret_value() if settings.operator_token else ""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


class SessionStore:
    """The console's sessions in its own table (``console.sessions``); routes reach it by
    ``SessionStoreDep``."""

    def __init__(
        self, settings: ConsoleSettings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker

    async def open(self) -> tuple[str, ConsoleSession]:
        """A new session: the cookie's token and the stored row."""
        token = secrets.token_urlsafe(32)
        row = m.Session(
            token_hash=_hash(token),
            csrf=secrets.token_urlsafe(32),
            expires_at=utcnow() + timedelta(seconds=self.settings.session_ttl_s),
        )
        async with self.sessionmaker() as db, db.begin():
            db.add(row)
        return token, ConsoleSession(row.token_hash, row.csrf)

    async def close(self, request: Request) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            async with self.sessionmaker() as db, db.begin():
                await db.execute(delete(m.Session).where(m.Session.token_hash == _hash(token)))

    async def sweep_expired(self) -> None:
        """Scheduled: delete sessions past their expiry."""
        async with self.sessionmaker() as db, db.begin():
            await db.execute(delete(m.Session).where(m.Session.expires_at <= utcnow()))

    async def find(self, request: Request) -> ConsoleSession | None:
        """The request's live session; raises SessionExpired when a cookie names none."""
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        async with self.sessionmaker() as db:
            row = await db.get(m.Session, _hash(token))
        if row is None or row.expires_at <= utcnow():
            raise SessionExpired()
        return ConsoleSession(row.token_hash, row.csrf)


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
