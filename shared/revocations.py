"""Keeps a service's copy of the revocations fresh: edge tokens' (per node) and signed
credentials' (by serial, shared.credentials).

Pushed: setup sends ``NOTIFY edge_token_revocations, '{"nid": ..., "min_token_id": ...}'`` in the
transaction that rotates or deletes, and ``NOTIFY credential_revocations, '{"serial": ...,
"expires_at": ...}'`` in the one that revokes a credential (delivered on commit, to every process
of every service listening on the shared Postgres): the change applies within milliseconds, with
no call to setup per record. Safety net: every EDGE_REVOCATIONS_REFRESH_S a scheduled job re-reads
both lists (from setup over HTTP, or setup's own tables) and re-opens the listening connection if
it dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from shared.contracts.credentials import TokenRevocations
from shared.edge_tokens import RevocationSet
from shared.errors import DomainError
from shared.service_client import ServiceClient
from shared.settings import ServiceSettings
from shared.signing import KeyRing, revoked_from_document

log = logging.getLogger("edge.revocations")

CHANNEL = "edge_token_revocations"
CREDENTIAL_CHANNEL = "credential_revocations"
# Edge tokens: {nid: min_token_id}; credentials: {serial: expires_at}.
Loader = Callable[[], Awaitable[dict[str, int]]]


def http_loader(settings: ServiceSettings) -> Loader:
    async def load() -> dict[str, int]:
        setup = ServiceClient(
            "setup", settings.setup_url, token=settings.own_credential(), timeout=5.0
        )
        try:
            body = await setup.model("GET", "/edges/token-revocations", TokenRevocations)
        finally:
            await setup.aclose()
        return body.min_token_id

    return load


def http_credential_loader(settings: ServiceSettings) -> Loader:
    """The revoked credential serials setup publishes on its open ``GET /keys``."""

    async def load() -> dict[str, int]:
        setup = ServiceClient("setup", settings.setup_url, token=None, timeout=5.0)
        try:
            return revoked_from_document(await setup.json("GET", "/keys"))
        finally:
            await setup.aclose()

    return load


class RevocationWatcher:
    def __init__(
        self,
        settings: ServiceSettings,
        revocations: RevocationSet,
        loader: Loader,
        ring: KeyRing | None = None,
        credential_loader: Loader | None = None,
    ) -> None:
        self.settings = settings
        self.revocations = revocations
        self.loader = loader
        self.ring = ring
        self.credential_loader = credential_loader
        self._listener: asyncpg.Connection | None = None
        self._scheduler = AsyncIOScheduler()

    async def start(self) -> None:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        await self.refresh()
        self._scheduler.add_job(
            self.refresh,
            "interval",
            seconds=self.settings.revocations_refresh_s,
            id="edge-token-revocations",
        )
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    async def refresh(self) -> None:
        """Listen again if the connection dropped, then read the whole lists (a push may have
        been missed while it was down)."""
        await self._ensure_listener()
        try:
            entries = await self.loader()
        except _UNAVAILABLE as exc:
            log.warning(
                "edge-token revocations unavailable, keeping %d known: %s",
                len(self.revocations.min_token_id),
                exc,
            )
        else:
            self.revocations.replace(entries)
        if self.ring is None or self.credential_loader is None:
            return
        try:
            serials = await self.credential_loader()
        except _UNAVAILABLE as exc:
            log.warning(
                "credential revocations unavailable, keeping %d known: %s",
                len(self.ring.revoked),
                exc,
            )
        else:
            self.ring.revoke(serials)  # a revoked serial stays until its credential expires

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        dsn = self.settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        try:
            self._listener = await asyncpg.connect(dsn, timeout=5)
            await self._listener.add_listener(CHANNEL, self._on_notify)
            await self._listener.add_listener(CREDENTIAL_CHANNEL, self._on_credential)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            self._listener = None
            log.warning(
                "cannot listen for edge-token revocations (next try in %ss): %s",
                self.settings.revocations_refresh_s,
                exc,
            )

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = json.loads(payload)
            self.revocations.apply(str(change["nid"]), int(change["min_token_id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed revocation message")

    def _on_credential(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if self.ring is None:
            return
        try:
            change = json.loads(payload)
            self.ring.revoke({str(change["serial"]): int(change["expires_at"])})
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed credential revocation message")


_UNAVAILABLE = (DomainError, asyncpg.PostgresError, OSError, ValueError, KeyError, TypeError)
