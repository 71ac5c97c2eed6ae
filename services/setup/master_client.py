"""Setup asks the master to act, through the one client layer (shared.service_client).

Requests to act (reconcile, build, remove) go out after commit through an :class:`Outbox` and
never fail the request: the master's periodic reconcile pass converges anyway if one is lost.
The package-folder check is a call the field's upload route waits for.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import after_commit
from shared.errors import Invalid
from shared.service_client import Outbox, OutboxMetrics, ServiceClient
from shared.settings import ServiceSettings


class MasterCalls:
    """Setup's calls to the master: ``app.state.master``, started and drained by the app."""

    def __init__(
        self, settings: ServiceSettings, registry: CollectorRegistry | None, *, enabled: bool
    ) -> None:
        self.enabled = enabled
        self.client = ServiceClient(
            "master", settings.master_url, token=settings.own_credential(), timeout=5.0
        )
        self.outbox = Outbox(self.client, metrics=OutboxMetrics(registry, "setup"), enabled=enabled)

    def _after_commit(self, session: AsyncSession, path: str, kind: str) -> None:
        if not self.enabled:
            return

        async def queue() -> None:
            self.outbox.send(path, None, kind=kind)

        after_commit(session, queue)

    def request_reconcile(self, session: AsyncSession) -> None:
        self._after_commit(session, "/reconcile", "reconcile")

    def request_build(self, session: AsyncSession, ai_id: int) -> None:
        self._after_commit(session, f"/ai-packages/{ai_id}/build", "build")

    def request_removal(self, session: AsyncSession, ai_id: int) -> None:
        self._after_commit(session, f"/ai-packages/{ai_id}/remove", "remove")

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
