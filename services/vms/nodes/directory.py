"""What the VMS knows from setup: the registered node ids (and edge names) and the code -> condition
map.

Both are refreshed on a schedule and, for node ids, on a miss (at most once every
``VMS_NODES_MISS_REFRESH_S``). A node that proves itself with its edge token needs neither: the
token (checked against the pushed revocations) is the proof. When setup cannot be reached the last
known values stay in use; before the first successful answer the condition map is
DEFAULT_CONDITIONS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated

from fastapi import Depends
from pydantic import ValidationError

from services.vms.settings import VmsSettings
from shared.contracts.fleet import CONDITIONS, NodeIds
from shared.deps import from_app_state
from shared.errors import DomainError
from shared.service_client import ServiceClient

log = logging.getLogger("edge.vms.directory")

# The field never fixed the mapping; this is our documented default until setup answers.
DEFAULT_CONDITIONS: dict[str, str] = {
    "0": "SUNNY",
    "1": "CLOUDY",
    "2": "RAINY",
    "3": "SNOWY",
    "4": "FOGGY",
    "5": "NIGHT",
}


class NodeDirectory:
    def __init__(self, settings: VmsSettings):
        self.settings = settings
        self.nids: frozenset[str] = frozenset()
        self.names: dict[str, str] = {}
        self.device_logins: dict[str, str] = {}  # a field device's login name -> its edge's nid
        self.time_zones: dict[str, str] = {}  # nid -> IANA zone, for edges that have their own
        self.conditions: dict[str, str] = dict(DEFAULT_CONDITIONS)
        self._last_nodes_refresh = 0.0
        self._lock = asyncio.Lock()
        self._setup = ServiceClient(
            "setup",
            settings.setup_url,
            token=settings.own_credential(),
            timeout=settings.setup_timeout_s,
        )
        # one tracked refresh for token-proven nodes
        self._learning: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()

    async def close(self) -> None:
        if self._learning is not None:
            self._learning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._learning
        await self._setup.aclose()

    async def refresh(self) -> None:
        await self.refresh_nodes()
        await self.refresh_conditions()

    async def refresh_nodes(self) -> bool:
        self._last_nodes_refresh = time.monotonic()
        try:
            body = await self._setup.model("GET", "/edges/node-ids", NodeIds)
        except DomainError as exc:
            log.warning(
                "node ids from setup unavailable, keeping %d known: %s", len(self.nids), exc
            )
            return False
        self.nids, self.names = frozenset(body.items), body.names
        self.time_zones, self.device_logins = body.time_zones, body.device_logins
        return True

    async def refresh_conditions(self) -> bool:
        try:
            response = await self._setup.request("GET", "/conditions", what="condition map")
            codes = CONDITIONS.validate_json(response.content)["codes"]
            mapping = {k: v.upper() for k, v in codes.items()}
        except (DomainError, ValidationError) as exc:
            log.warning("condition map from setup unavailable, keeping the last one: %s", exc)
            return False
        if mapping:
            self.conditions = mapping
        return True

    def time_zone_for(self, nid: str) -> str | None:
        """The edge's own time zone as setup holds it, or None (the fleet default applies)."""
        return self.time_zones.get(nid)

    def condition_for(self, code: str) -> str | None:
        return self.conditions.get(code)

    async def _refresh_on_miss(self) -> None:
        # One refresh at a time, and not more often than the setting: a flood of unknown ids
        # must not become a flood of calls to setup.
        if time.monotonic() - self._last_nodes_refresh < self.settings.nodes_miss_refresh_s:
            return
        async with self._lock:
            if time.monotonic() - self._last_nodes_refresh < self.settings.nodes_miss_refresh_s:
                return
            await self.refresh_nodes()

    def known_now(self, nid: str, *, from_token: bool = False) -> bool | None:
        """Without waiting: True/False, or None when a refresh from setup is due first."""
        if nid in self.nids or from_token:
            # A valid token (signed by setup, not expired, not revoked) proves the node, even
            # before the list has caught up with a new registration.
            return True
        if time.monotonic() - self._last_nodes_refresh < self.settings.nodes_miss_refresh_s:
            return False
        return None

    def learn(self, nid: str) -> None:
        """A token proved ``nid`` but the list lacks it: a new registration the VMS has not seen
        yet. Refresh the list in the background (rate-limited like a miss) so that the rest of
        setup's news (other new nodes, names, time zones) arrives too."""
        if nid in self.nids or (self._learning is not None and not self._learning.done()):
            return
        if time.monotonic() - self._last_nodes_refresh < self.settings.nodes_miss_refresh_s:
            return  # refreshed lately: the task would return at once (no task per request)
        self._learning = asyncio.create_task(self._refresh_on_miss(), name="vms-nodes-learn")

    async def is_known(self, nid: str, *, from_token: bool = False) -> bool:
        known = self.known_now(nid, from_token=from_token)
        if known is not None:
            return known
        await self._refresh_on_miss()
        return nid in self.nids

    async def nid_for_username(self, username: str) -> str | None:
        """The field's usage payload names the device, not the node: map the device's login name
        (an edge's ``device_login`` in setup), an edge name or a nid to a nid."""
        nid = self.nid_for_username_now(username)
        if nid is None:
            await self._refresh_on_miss()
            nid = self.nid_for_username_now(username)
        return nid

    def nid_for_username_now(self, username: str) -> str | None:
        """``nid_for_username`` from what the VMS knows now (no refresh on a miss)."""
        if username in self.device_logins:
            return self.device_logins[username]
        if username in self.names:
            return self.names[username]
        if username in self.nids:
            return username
        return None


DirectoryDep = Annotated[NodeDirectory, Depends(from_app_state("directory", NodeDirectory))]
