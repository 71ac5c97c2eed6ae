"""Keeps a service's copy of setup's public keys fresh (shared.signing).

At start and every EDGE_PUBLIC_KEYS_REFRESH_S the service reads setup's open ``GET /keys``; a token
naming a key id it does not know makes it read them again at once (at most every few seconds, see
``KeyRing.refresh``). Setup itself, and a service told EDGE_FETCH_PUBLIC_KEYS=false (keys given in
EDGE_PUBLIC_KEYS), reads nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.contracts.credentials import KeyDocument
from shared.service_client import ServiceClient
from shared.settings import ServiceSettings
from shared.signing import Fetcher, KeyRing, keys_from_document

log = logging.getLogger("edge.keys")


def http_fetcher(settings: ServiceSettings) -> Fetcher:
    async def fetch() -> list[Ed25519PublicKey]:
        setup = ServiceClient("setup", settings.setup_url, token=None, timeout=5.0)
        try:
            document = await setup.model("GET", "/keys", KeyDocument)
        finally:
            await setup.aclose()
        return keys_from_document(document.model_dump())

    return fetch


class KeyWatcher:
    def __init__(self, settings: ServiceSettings, ring: KeyRing) -> None:
        self.settings = settings
        self.ring = ring
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.ring.signer is None and self.settings.fetch_public_keys

    async def start(self) -> None:
        if not self.active:
            return
        self.ring.fetcher = http_fetcher(self.settings)
        if await self.ring.refresh():
            log.info("setup's public keys: %s", ", ".join(sorted(self.ring.fetched)))
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            # Until a first read succeeds (setup starting after this service): every 2 s.
            period = self.settings.public_keys_refresh_s
            await asyncio.sleep(period if self.ring.fetched else min(2.0, period))
            await self.ring.refresh()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
