"""The edge's own token on the agent: kept in a file, renewed with setup before it expires.

The token (issued by setup when the edge was registered) comes from AGENT_EDGE_TOKEN or the file
``<workdir>/edge-token`` (0600), whichever expires later; the file is re-read when it changes (an
operator or ``edgectl up`` may write a new one). The agent fetches packages with it, hands it to
its workloads (EDGE_TOKEN) and, on a schedule, renews it (``POST /edges/me/token`` on setup) once
less than AGENT_TOKEN_RENEW_BEFORE_S is left; a renewal restarts the workloads so that none keeps
a token that will expire.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from edge_ai.common.http import CallFailed, EdgeClient

log = logging.getLogger("edge.agent.credentials")


def token_expiry(token: str) -> int | None:
    """The expiry the token states (not verified here: setup and the VMS verify it)."""
    try:
        parts = token[len("edg_") :].rsplit(".", 1)[0].split(".")
        return int(parts[2]) if token.startswith("edg_") and len(parts) == 4 else None
    except ValueError:
        return None


def token_nid(token: str) -> str | None:
    try:
        return (
            bytes.fromhex(token[len("edg_") :].split(".", 1)[0]).decode()
            if token.startswith("edg_")
            else None
        )
    except ValueError:
        return None


class EdgeTokenStore:
    def __init__(
        self,
        path: Path,
        initial: str | None,
        *,
        setup_url: str,
        renew_before_s: float,
        verify: ssl.SSLContext | bool = True,
        on_renewed: Callable[[], Awaitable[None]] | None = None,
    ):
        self.path = path
        self.setup_url = setup_url.rstrip("/")
        self.renew_before_s = renew_before_s
        self.verify = verify
        self.on_renewed = on_renewed
        self._token = initial
        self._mtime = 0.0
        self.renewals = 0

    def current(self) -> str | None:
        """The token expiring last among the env's and the file's (the file is read on change)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return self._token
        if mtime != self._mtime:
            self._mtime = mtime
            stored = self.path.read_text().strip()
            if stored and (token_expiry(stored) or 0) >= (token_expiry(self._token or "") or 0):
                self._token = stored
        return self._token

    def _save(self, token: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.replace(tmp, self.path)
        self._token, self._mtime = token, self.path.stat().st_mtime

    async def renew_if_due(self) -> bool:
        token = self.current()
        expires = token_expiry(token or "")
        if token is None or expires is None or expires - time.time() > self.renew_before_s:
            return False
        try:
            async with EdgeClient(
                "setup", self.setup_url, token=token, timeout=10.0, verify=self.verify
            ) as setup:
                answer = await setup.json("POST", "/edges/me/token")
            fresh = answer["token"]
        except CallFailed as exc:
            log.warning("renewing the edge token failed (next try at the next check): %s", exc)
            return False
        except (TypeError, KeyError) as exc:
            log.warning(
                "renewing the edge token failed (next try at the next check): the answer has "
                "no token (%s)",
                type(exc).__name__,
            )
            return False
        self._save(fresh)
        self.renewals += 1
        log.info("edge token renewed, valid until %s", token_expiry(fresh))
        if self.on_renewed is not None:
            await self.on_renewed()
        return True


class BearerFromStore(httpx.Auth):
    """httpx auth: the store's current token on every request."""

    def __init__(self, store: EdgeTokenStore):
        self.store = store

    def auth_flow(self, request: httpx.Request):
        token = self.store.current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request
