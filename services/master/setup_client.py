"""The master's calls to setup (the owner of AI rows and desired state) and its events for the
optimizer, through the one client layer (shared.service_client): errors come back as domain
errors, 404/409/422 with the field setup named, so the master's own answer names it too."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from services.master.settings import MasterSettings
from shared.contracts.deployments import DeploymentCreate, DeploymentOut, DeploymentUpdate
from shared.contracts.events import Event
from shared.contracts.fleet import FLEET_SNAPSHOT, FleetSnapshot
from shared.contracts.master import (
    AiPackageChange,
    AiPackageNew,
    AiPackagePage,
    AiPackageRecord,
    ClusterPage,
    ClusterRecord,
    EdgeCamera,
    EdgeToken,
    MasterHealth,
    MasterHeartbeat,
    MasterPage,
    MasterRecord,
    MasterRegistration,
    ObservedRecorded,
    ObservedReport,
    ObservedReports,
)
from shared.errors import UpstreamError
from shared.service_client import Outbox, OutboxMetrics, ServiceClient
from shared.versions import version_key

# Every AI or cluster in one page: setup's lists are small (one row per package or cluster).
ALL = 10_000


def _token(settings: MasterSettings) -> str | None:
    # The master's own, scoped credential (shared.auth.SERVICE_GRANTS["master"]).
    return settings.own_credential() or None


class SetupClient:
    """Setup's routes the master uses, typed by shared.contracts.master."""

    def __init__(self, settings: MasterSettings):
        self.client = ServiceClient(
            "setup", settings.setup_url, token=_token(settings), timeout=settings.setup_timeout_s
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- edge tokens for workloads (kubernetes and docker runtimes) ----------------------
    async def workload_token(self, edge_id: int) -> EdgeToken:
        return await self.client.model(
            "POST", f"/edges/{edge_id}/workload-token", EdgeToken, what=f"edge {edge_id} token"
        )

    async def camera_url(self, edge_id: int) -> str | None:
        """The edge's camera URL with its credentials (a secret: never logged, never in params)."""
        answer = await self.client.model(
            "GET", f"/edges/{edge_id}/camera", EdgeCamera, what=f"edge {edge_id} camera"
        )
        return answer.url or None

    # --- AI packages --------------------------------------------------------------------
    async def get_ai(self, ai_id: int) -> AiPackageRecord:
        return await self.client.model(
            "GET", f"/ai-packages/{ai_id}", AiPackageRecord, what=f"AI {ai_id}"
        )

    async def list_ais_raw(self, params: dict[str, Any]) -> Any:
        """Setup's list as it answers it (the master's GET /ai-packages passes it on)."""
        return await self.client.json("GET", "/ai-packages", params=params, what="AI list")

    async def list_ais(self, **params: Any) -> list[AiPackageRecord]:
        page = await self.client.model(
            "GET", "/ai-packages", AiPackagePage, params={"limit": ALL, **params}, what="AI list"
        )
        return page.items

    async def find_ai(self, filename: str, ai_class: str, version: str) -> AiPackageRecord | None:
        key = version_key(version)
        found = await self.list_ais(filename=filename, ai_class=ai_class)
        return next((a for a in found if version_key(a.version) == key), None)

    async def create_ai(self, body: AiPackageNew) -> AiPackageRecord:
        return await self.client.model(
            "POST",
            "/ai-packages",
            AiPackageRecord,
            json=body.model_dump(mode="json"),
            what="AI create",
        )

    async def patch_ai(self, ai_id: int, change: AiPackageChange) -> AiPackageRecord:
        return await self.client.model(
            "PATCH",
            f"/ai-packages/{ai_id}",
            AiPackageRecord,
            json=change.model_dump(mode="json", exclude_unset=True),
            what=f"AI {ai_id} update",
        )

    async def delete_ai(self, ai_id: int) -> AiPackageRecord:
        return await self.client.model(
            "DELETE", f"/ai-packages/{ai_id}", AiPackageRecord, what=f"AI {ai_id} removal"
        )

    # --- desired state ------------------------------------------------------------------
    async def snapshot(self, cluster_ids: set[int] | None = None) -> FleetSnapshot:
        """The fleet, or only the edges of ``cluster_ids`` (the clusters this master serves)."""
        params = None
        if cluster_ids is not None:
            params = {"cluster_ids": ",".join(str(i) for i in sorted(cluster_ids))}
        response = await self.client.request(
            "GET", "/fleet/snapshot", params=params, what="fleet snapshot"
        )
        try:
            return FLEET_SNAPSHOT.validate_json(response.content)
        except ValueError as exc:
            raise UpstreamError(
                f"setup's fleet snapshot does not match its contract: {exc}"
            ) from exc

    async def clusters(self) -> list[ClusterRecord]:
        page = await self.client.model(
            "GET", "/clusters", ClusterPage, params={"limit": ALL}, what="clusters"
        )
        return page.items

    # --- this master's registration -----------------------------------------------------
    async def register_master(self, body: MasterRegistration) -> MasterRecord:
        return await self.client.model(
            "POST",
            "/masters/register",
            MasterRecord,
            json=body.model_dump(mode="json"),
            what="master registration",
        )

    async def heartbeat(self, master_id: int, health: MasterHealth) -> MasterRecord:
        return await self.client.model(
            "POST",
            f"/masters/{master_id}/heartbeat",
            MasterRecord,
            json=MasterHeartbeat(health=health).model_dump(mode="json"),
            what="master heartbeat",
        )

    async def masters(self) -> list[MasterRecord]:
        page = await self.client.model(
            "GET", "/masters", MasterPage, params={"limit": ALL}, what="masters"
        )
        return page.items

    async def create_deployment(self, body: DeploymentCreate) -> DeploymentOut:
        return await self.client.model(
            "POST",
            "/deployments",
            DeploymentOut,
            json=body.model_dump(mode="json", exclude_unset=True),
            what="deployment create",
        )

    async def update_deployment(self, dep_id: int, body: DeploymentUpdate) -> DeploymentOut:
        return await self.client.model(
            "PATCH",
            f"/deployments/{dep_id}",
            DeploymentOut,
            json=body.model_dump(mode="json", exclude_unset=True),
            what=f"deployment {dep_id} update",
        )

    async def remove_deployment(self, dep_id: int) -> DeploymentOut:
        return await self.client.model(
            "DELETE", f"/deployments/{dep_id}", DeploymentOut, what=f"deployment {dep_id} removal"
        )

    async def report_observed(self, reports: list[ObservedReport]) -> None:
        if reports:
            body = ObservedReports(reports=reports).model_dump(mode="json")
            await self.client.model(
                "POST", "/deployments/observed", ObservedRecorded, json=body, what="observed report"
            )

    async def legacy(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One of setup's field routes (/request_*), answered in the field's envelope."""
        answer = await self.client.json("POST", path, json=body, what=path)
        return answer if isinstance(answer, dict) else {}


class OptimizerEvents:
    """Events for the optimizer, through an Outbox: queued, sent by one tracked task, never
    waited for (a down optimizer never stops the master), drained on shutdown."""

    def __init__(self, settings: MasterSettings, registry: CollectorRegistry | None):
        client = ServiceClient(
            "optimizer", settings.optimizer_url, token=_token(settings), timeout=2.0
        )
        self.outbox = Outbox(
            client, metrics=OutboxMetrics(registry, "master"), enabled=settings.notify_optimizer
        )

    def start(self) -> None:
        self.outbox.start()

    async def stop(self) -> None:
        await self.outbox.stop()

    def send(self, event: Event) -> bool:
        return self.outbox.send(
            "/events", event.model_dump(mode="json", exclude_defaults=True), kind=event.type.value
        )
