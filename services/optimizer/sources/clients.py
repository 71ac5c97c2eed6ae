"""The optimizer's two sources and one sink: setup (fleet snapshot, bulk writes) and the VMS (node state).

Bulk calls only: one snapshot, one node-state answer, one bulk write per cycle. Answers are parsed
with orjson (a 100k-edge snapshot is tens of MB)."""
from __future__ import annotations

from typing import Any

import httpx
import orjson

from services.optimizer.settings import OptimizerSettings
from shared.clients import raise_for_upstream, service_client
from shared.errors import Conflict, Unavailable


def _json(response: httpx.Response) -> Any:
    return orjson.loads(response.content)


class SetupClient:
    def __init__(self, settings: OptimizerSettings):
        self.http = service_client(settings, settings.setup_url, timeout=settings.source_timeout_s)

    async def snapshot(self, edge_ids: set[int] | None = None) -> dict[str, Any]:
        """The whole fleet, or (where setup supports ``edge_ids``) only these edges' rows.

        Callers check ``len(answer["edges"])``: a setup that ignores the filter answers everything."""
        params = {"edge_ids": ",".join(str(i) for i in sorted(edge_ids))} if edge_ids else None
        try:
            r = await self.http.get("/fleet/snapshot", params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"setup unreachable: {exc}") from exc
        raise_for_upstream(r, "setup /fleet/snapshot")
        return _json(r)

    async def bulk(self, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            r = await self.http.post(
                "/deployments/bulk",
                content=orjson.dumps({"requested_by": "optimizer", "operations": operations}),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"setup unreachable: {exc}") from exc
        if r.status_code == 409:
            detail = _json(r).get("error", {})
            raise Conflict(f"setup refused the bulk write: {detail.get('message')}", field=detail.get("field"))
        raise_for_upstream(r, "setup /deployments/bulk")
        return _json(r)["results"]

    async def aclose(self) -> None:
        await self.http.aclose()


class VmsClient:
    def __init__(self, settings: OptimizerSettings):
        self.http = service_client(settings, settings.vms_url, timeout=settings.source_timeout_s)

    async def nodes(self, nids: set[str] | None = None) -> list[dict[str, Any]]:
        params = {"include_silent": "false"}
        if nids:
            params["nids"] = ",".join(sorted(nids))
        try:
            r = await self.http.get("/nodes/state", params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"VMS unreachable: {exc}") from exc
        raise_for_upstream(r, "VMS /nodes/state")
        body = _json(r)
        return body["items"] if isinstance(body, dict) else body

    async def aclose(self) -> None:
        await self.http.aclose()
