"""The optimizer's two sources and one sink: setup (fleet snapshot, bulk writes) and the VMS (node state).

Bulk calls only: one snapshot, one node-state answer, one bulk write per cycle. Answers are parsed
with orjson (a 100k-edge snapshot is tens of MB)."""
from __future__ import annotations

from datetime import datetime
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

    async def snapshot(self, edge_ids: set[int] | None = None, since: datetime | None = None) -> dict[str, Any]:
        """The whole fleet, or (where setup supports ``edge_ids``) only these edges' rows, or (with
        ``since``) only the rows changed after it plus ``edge_ids``, every current edge id.

        Callers check ``len(answer["edges"])``: a setup that ignores the filter answers everything;
        one that ignores ``since`` answers without ``edge_ids``."""
        params = {"edge_ids": ",".join(str(i) for i in sorted(edge_ids))} if edge_ids else {}
        if since is not None:
            params["since"] = since.isoformat()
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
        body = await self.state(nids)
        return body["items"] if isinstance(body, dict) else body

    async def state(self, nids: set[str] | None = None, since: datetime | None = None) -> Any:
        """The GET /nodes/state answer: ``items`` and ``generated_at`` (the VMS's database clock);
        with ``since``, only the nodes whose state changed after it."""
        params = {"include_silent": "false"}
        if nids:
            params["nids"] = ",".join(sorted(nids))
        if since is not None:
            params["since"] = since.isoformat()
        try:
            r = await self.http.get("/nodes/state", params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"VMS unreachable: {exc}") from exc
        raise_for_upstream(r, "VMS /nodes/state")
        return _json(r)

    async def aclose(self) -> None:
        await self.http.aclose()
