"""Setup asks the masters to act, through the one client layer (shared.service_client).

Each cluster is converged by the master that registered as serving it (``clusters.master_id``);
a cluster no master serves goes to the default master (``EDGE_MASTER_URL``: the only one of a
single-site install). Requests to act go out after commit through one :class:`Outbox` per master
and never fail the request: each master's periodic reconcile pass converges anyway if one is
lost, and a master that was down catches up from desired state when it returns.

- reconcile nudges: to the masters of the clusters concerned (the edges changed);
- builds: to the default master (a package is built once; each site's master copies it into its
  own registry when one of its clusters needs it);
- removals: to every registered master and the default one (each cleans its own registry and
  store);
- the field's package-folder check: the default master, awaited by the field's upload route.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends
from prometheus_client import CollectorRegistry
from sqlalchemy import Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.models import Cluster, Deployment, Edge, Master
from shared.contracts.fleet import DesiredState
from shared.db import after_commit
from shared.deps import from_app_state
from shared.errors import Invalid
from shared.service_client import Outbox, OutboxMetrics, ServiceClient
from shared.settings import ServiceSettings

log = logging.getLogger("edge.setup.masters")

# (label for metrics and logs, base URL) of one master.
Target = tuple[str, str]


class MasterCalls:
    """Setup's calls to the masters: ``app.state.master``, started and drained by the app."""

    def __init__(
        self, settings: ServiceSettings, registry: CollectorRegistry | None, *, enabled: bool
    ) -> None:
        self.enabled = enabled
        self._token = settings.own_credential()
        self._metrics = OutboxMetrics(registry, "setup")
        self.default: Target = ("master", settings.master_url.rstrip("/"))
        self.client = ServiceClient("master", self.default[1], token=self._token, timeout=5.0)
        self.outbox = Outbox(self.client, metrics=self._metrics, enabled=enabled)
        self._outboxes: dict[str, Outbox] = {self.default[1]: self.outbox}
        self._started = False

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._started = True
        for outbox in self._outboxes.values():
            outbox.start()

    async def stop(self) -> None:
        for outbox in list(self._outboxes.values()):
            await outbox.stop()  # queued requests get a short deadline to go out
        self._started = False

    def _outbox(self, target: Target) -> Outbox:
        label, url = target
        outbox = self._outboxes.get(url)
        if outbox is None:
            client = ServiceClient(label, url, token=self._token, timeout=5.0)
            outbox = self._outboxes[url] = Outbox(
                client, metrics=self._metrics, enabled=self.enabled
            )
            if self._started:
                outbox.start()
        return outbox

    def _after_commit(
        self, session: AsyncSession, targets: Iterable[Target], path: str, kind: str
    ) -> None:
        if not self.enabled:
            return
        unique = {url: (label, url) for label, url in targets}

        async def queue() -> None:
            for target in unique.values():
                self._outbox(target).send(path, None, kind=kind)

        after_commit(session, queue)

    # --- who serves what ----------------------------------------------------------------
    async def targets_for_clusters(
        self, session: AsyncSession, cluster_ids: Iterable[int]
    ) -> list[Target]:
        """The master of each cluster; the default master for a cluster no master serves."""
        ids = set(cluster_ids)
        if not ids:
            return []
        rows = (
            await session.execute(
                select(Cluster.id, Cluster.name, Master.name, Master.url)
                .outerjoin(Master, Master.id == Cluster.master_id)
                .where(Cluster.id.in_(ids))
            )
        ).all()
        targets: list[Target] = []
        for _cid, cluster_name, master_name, url in rows:
            if url:
                targets.append((f"master:{master_name}", url.rstrip("/")))
            else:
                log.debug(
                    "cluster %s has no registered master: the default one is asked", cluster_name
                )
                targets.append(self.default)
        return targets

    async def targets_for_edges(
        self, session: AsyncSession, edge_ids: Iterable[int]
    ) -> list[Target]:
        ids = set(edge_ids)
        if not ids:
            return []
        # One array parameter (a bulk write names thousands of edges: an IN list renders one
        # parameter each).
        edges = bindparam("edge_ids", sorted(ids), type_=ARRAY(Integer))
        clusters = (
            await session.scalars(select(Edge.cluster_id).where(Edge.id == any_(edges)).distinct())
        ).all()
        return await self.targets_for_clusters(session, clusters)

    async def targets_for_ai(self, session: AsyncSession, ai_id: int) -> list[Target]:
        """Every master whose clusters run (or are to run) the AI."""
        clusters = (
            await session.scalars(
                select(Edge.cluster_id)
                .join(Deployment, Deployment.edge_id == Edge.id)
                .where(Deployment.ai_id == ai_id, Deployment.desired == DesiredState.RUNNING)
                .distinct()
            )
        ).all()
        return await self.targets_for_clusters(session, clusters)

    async def all_targets(self, session: AsyncSession) -> list[Target]:
        """Every registered master, and the default one."""
        rows = (
            await session.execute(
                select(Master.name, Master.url).where(Master.last_seen_at.is_not(None))
            )
        ).all()
        return [self.default] + [(f"master:{name}", url.rstrip("/")) for name, url in rows]

    # --- requests -----------------------------------------------------------------------
    async def request_reconcile(
        self,
        session: AsyncSession,
        *,
        edge_ids: Iterable[int] = (),
        ai_id: int | None = None,
    ) -> None:
        """Nudge the masters of the edges changed (or of the clusters running ``ai_id``)."""
        targets = await self.targets_for_edges(session, edge_ids)
        if ai_id is not None:
            targets += await self.targets_for_ai(session, ai_id)
        self._after_commit(session, targets, "/reconcile", "reconcile")

    def request_build(self, session: AsyncSession, ai_id: int) -> None:
        self._after_commit(session, [self.default], f"/ai-packages/{ai_id}/build", "build")

    async def request_removal(self, session: AsyncSession, ai_id: int) -> None:
        targets = await self.all_targets(session)
        self._after_commit(session, targets, f"/ai-packages/{ai_id}/remove", "remove")

    async def check_package_folder(self, filename: str, version: str, ai_class: str) -> None:
        """Ask the master, before a field upload is recorded, whether its package folder is there:
        Invalid naming ``filename`` when it is not (the field's route refuses at once), Unavailable
        when the master cannot answer (nothing is recorded; the device may send it again)."""
        try:
            await self.client.request(
                "GET",
                f"/ai-packages/folders/{filename}",
                params={"version": version, "ai_class": ai_class},
                what="the master (package folder)",
            )
        except Invalid as exc:
            # The master's own message, without our label: the field's envelope shows it as is.
            message = exc.message.removeprefix("the master (package folder): ")
            raise Invalid(message, field=exc.field or "filename") from None


MasterDep = Annotated[MasterCalls, Depends(from_app_state("master", MasterCalls))]
