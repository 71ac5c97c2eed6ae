"""The optimizer's two sources and one sink: setup (fleet snapshot, bulk writes) and the VMS
(node state), speaking the contracts of shared.contracts.

Bulk calls only: one snapshot, one node-state answer, one bulk write per cycle. The big answers
are parsed with orjson into the contracts' TypedDicts (a 100k-edge snapshot is tens of MB, and
validating it into objects would triple the parse time); the small ones are validated."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import orjson

from services.optimizer.settings import OptimizerSettings
from shared.contracts.decisions import BulkOperation, BulkResponse, BulkResult, op_wire
from shared.contracts.fleet import FleetSnapshot
from shared.contracts.nodes import NodeState, NodeStates
from shared.service_client import ServiceClient


def _client(name: str, base_url: str, settings: OptimizerSettings) -> ServiceClient:
    return ServiceClient(
        name, base_url, token=settings.own_credential() or None, timeout=settings.source_timeout_s
    )


class SetupClient:
    def __init__(self, settings: OptimizerSettings):
        self.client = _client("setup", settings.setup_url, settings)

    async def snapshot(
        self, edge_ids: set[int] | None = None, since: datetime | None = None
    ) -> FleetSnapshot:
        """The whole fleet, or only these edges' rows, or (with ``since``) only the rows changed
        after it plus ``edge_ids``, every current edge id."""
        params = {"edge_ids": ",".join(str(i) for i in sorted(edge_ids))} if edge_ids else {}
        if since is not None:
            params["since"] = since.isoformat()
        r = await self.client.request(
            "GET", "/fleet/snapshot", params=params, what="setup /fleet/snapshot"
        )
        return cast(FleetSnapshot, orjson.loads(r.content))

    async def bulk(self, operations: list[BulkOperation]) -> list[BulkResult]:
        """One transaction on setup; a 409 (a stale generation) is raised as Conflict."""
        body = {"requested_by": "optimizer", "operations": [op_wire(op) for op in operations]}
        r = await self.client.request(
            "POST",
            "/deployments/bulk",
            content=orjson.dumps(body),
            headers={"content-type": "application/json"},
            what="setup /deployments/bulk",
        )
        return BulkResponse.model_validate_json(r.content).results

    async def aclose(self) -> None:
        await self.client.aclose()


class VmsClient:
    def __init__(self, settings: OptimizerSettings):
        self.client = _client("vms", settings.vms_url, settings)

    async def nodes(self, nids: set[str] | None = None) -> list[NodeState]:
        return (await self.state(nids))["items"]

    async def state(
        self, nids: set[str] | None = None, since: datetime | None = None
    ) -> NodeStates:
        """The GET /nodes/state answer: ``items`` and ``generated_at`` (the VMS's database clock);
        with ``since``, only the nodes whose state changed after it."""
        params = {"include_silent": "false"}
        if nids:
            params["nids"] = ",".join(sorted(nids))
        if since is not None:
            params["since"] = since.isoformat()
        r = await self.client.request("GET", "/nodes/state", params=params, what="VMS /nodes/state")
        return cast(NodeStates, orjson.loads(r.content))

    async def aclose(self) -> None:
        await self.client.aclose()
