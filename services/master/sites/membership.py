"""This master's place among the sites: it registers with setup as serving its clusters
(MASTER_NAME, MASTER_CLUSTERS), heartbeats with its health every MASTER_HEARTBEAT_SECONDS, and
answers which clusters' edges it reconciles.

- A master with no name registers nothing: it serves every cluster no registered master serves
  (a single-site install, as before sites existed).
- A named master serves the clusters setup says it serves (its registration's answer); with
  MASTER_CLUSTERS empty, also every cluster no registered master serves.
- A registration refused (a cluster another live master serves: 409; an unknown cluster: 422)
  leaves it serving nothing; the refusal is logged, shown by GET /status, and retried at the next
  heartbeat (the other master may stop, or the cluster be created).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends

from services.master.settings import MasterSettings
from services.master.setup_client import SetupClient
from shared.contracts.master import ClusterRecord, MasterHealth, MasterRecord, MasterRegistration
from shared.deps import from_app_state
from shared.errors import Conflict, DomainError, Invalid, NotFound

log = logging.getLogger("edge.master.sites")


class Membership:
    def __init__(
        self,
        settings: MasterSettings,
        setup: SetupClient,
        health: Callable[[], MasterHealth] = MasterHealth,
    ):
        self.settings = settings
        self.setup = setup
        self.health = health
        self.record: MasterRecord | None = None
        self.refused: str | None = None  # why setup refused the registration (409/422)
        self.last_error: str | None = None  # setup unreachable, ...
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def registers(self) -> bool:
        return bool(self.settings.name)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.registers:
            self._task = asyncio.create_task(self._loop(), name="master-heartbeat")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # one failed beat must not end the heartbeats
                log.exception("master heartbeat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.settings.heartbeat_seconds
                )

    # --- one beat -----------------------------------------------------------------------
    async def beat(self) -> None:
        """Heartbeat, or register when not (or no longer) registered."""
        try:
            if self.record is not None and self.refused is None:
                try:
                    self.record = await self.setup.heartbeat(self.record.id, self.health())
                    self.last_error = None
                    return
                except NotFound:
                    log.warning("setup no longer knows this master: registering again")
            await self.register()
        except DomainError as exc:
            self.last_error = exc.message
            log.warning("master heartbeat not delivered: %s", exc.message)

    async def register(self) -> None:
        s = self.settings
        body = MasterRegistration(
            name=s.name or "",
            url=s.own_url,
            description=s.description,
            clusters=s.cluster_names,
            health=self.health(),
        )
        try:
            self.record = await self.setup.register_master(body)
        except (Conflict, Invalid) as exc:
            if self.refused != exc.message:
                log.error("registration of master %s refused: %s", s.name, exc.message)
            self.refused = exc.message
            self.record = None
            return
        if self.refused is not None:
            log.info("master %s registered after a refusal", s.name)
        self.refused = None
        self.last_error = None
        log.info(
            "master %s registered (id %s) serving %s",
            s.name,
            self.record.id,
            ", ".join(self.record.clusters) or "every cluster no other master serves",
        )

    # --- what this master reconciles ----------------------------------------------------
    def served(self, clusters: list[ClusterRecord]) -> set[int]:
        """The ids of the clusters whose edges this master reconciles now."""
        if not self.registers:
            names = set(self.settings.cluster_names)
            if names:
                return {c.id for c in clusters if c.name in names}
            return {c.id for c in clusters if c.master_id is None}
        if self.record is None:
            return set()  # not registered (refused, or setup not reached yet): nothing
        mine = {c.id for c in clusters if c.master_id == self.record.id}
        if not self.settings.cluster_names:
            mine |= {c.id for c in clusters if c.master_id is None}
        return mine

    def status(self) -> dict[str, Any]:
        return {
            "name": self.settings.name,
            "url": self.settings.own_url,
            "registered": self.record is not None,
            "id": self.record.id if self.record else None,
            "clusters": self.record.clusters if self.record else self.settings.cluster_names,
            "refused": self.refused,
            "error": self.last_error,
        }


MembershipDep = Annotated[Membership, Depends(from_app_state("membership", Membership))]
