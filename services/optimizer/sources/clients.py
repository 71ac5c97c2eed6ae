"""The optimizer's two sources and one sink: setup (fleet snapshot, bulk writes) and the VMS
(node state), speaking the contracts of shared.contracts.

Bulk calls only: one snapshot, one node-state answer, one bulk write per cycle. The big answers
are asked for in the Arrow form (``Accept: application/vnd.apache.arrow.stream``,
OPTIMIZER_SOURCE_FORMAT=arrow), only the columns read (``columns=``), and turned into the
mirror's objects column by column (sources.columnar); a source that answers JSON (or
OPTIMIZER_SOURCE_FORMAT=json) is parsed with orjson into the contracts' TypedDicts (validating
them into models would triple the parse time). Either way the reader gets a FleetRead or
NodesRead; a big answer is decoded in a thread. The small answers are validated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar, cast

import httpx
import orjson

from services.optimizer.model.state import (
    FleetRead,
    NodesRead,
    fleet_read_from_wire,
    nodes_read_from_wire,
)
from services.optimizer.settings import OptimizerSettings
from services.optimizer.sources import columnar as columnar_read
from shared.contracts import columnar
from shared.contracts.decisions import BulkOperation, BulkResponse, BulkResult, op_wire
from shared.contracts.fleet import FleetSnapshot
from shared.contracts.nodes import NodeStates
from shared.errors import Unavailable
from shared.service_client import ServiceClient

T = TypeVar("T")


def _client(name: str, base_url: str, settings: OptimizerSettings) -> ServiceClient:
    return ServiceClient(
        name, base_url, token=settings.own_credential() or None, timeout=settings.source_timeout_s
    )


# Answers above this size are decoded in a thread (a whole fleet's takes tenths of a second).
_DECODE_INLINE_BYTES = 256 * 1024


def _accept(settings: OptimizerSettings) -> dict[str, str]:
    wanted = columnar.ARROW_STREAM if settings.source_format == "arrow" else "application/json"
    return {"accept": wanted}


def _columns(settings: OptimizerSettings, names: tuple[str, ...]) -> dict[str, str]:
    """In the Arrow form, only the columns sources.columnar reads (a JSON answer is whole)."""
    return {"columns": ",".join(names)} if settings.source_format == "arrow" else {}


async def _decode(r: httpx.Response, arrow: Callable[[bytes], T], json: Callable[[bytes], T]) -> T:
    decode = arrow if r.headers.get("content-type", "").startswith(columnar.ARROW_STREAM) else json
    if len(r.content) > _DECODE_INLINE_BYTES:
        return await asyncio.to_thread(decode, r.content)
    return decode(r.content)


def _fleet_json(body: bytes) -> FleetRead:
    return fleet_read_from_wire(cast(FleetSnapshot, orjson.loads(body)))


def _nodes_json(body: bytes) -> NodesRead:
    return nodes_read_from_wire(cast(NodeStates, orjson.loads(body)))


class SetupClient:
    def __init__(self, settings: OptimizerSettings):
        self.client = _client("setup", settings.setup_url, settings)
        self.accept = _accept(settings)
        self.columns = _columns(settings, columnar.SNAPSHOT_READ)

    async def snapshot(
        self, edge_ids: set[int] | None = None, since: datetime | None = None
    ) -> FleetRead:
        """The whole fleet, or only these edges' rows, or (with ``since``) only the rows changed
        after it plus ``edge_ids``, every current edge id."""
        params = {"edge_ids": ",".join(str(i) for i in sorted(edge_ids))} if edge_ids else {}
        params.update(self.columns)
        if since is not None:
            params["since"] = since.isoformat()
        r = await self.client.request(
            "GET",
            "/fleet/snapshot",
            params=params,
            headers=self.accept,
            what="setup /fleet/snapshot",
        )
        return await _decode(r, columnar_read.fleet_read, _fleet_json)

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
        self.accept = _accept(settings)
        self.columns = _columns(settings, columnar.NODES_READ)

    async def state(self, nids: set[str] | None = None, since: datetime | None = None) -> NodesRead:
        """The GET /nodes/state answer: ``items`` and ``generated_at`` (the VMS's database clock);
        with ``since``, only the nodes whose state changed after it."""
        params = {"include_silent": "false", **self.columns}
        if nids:
            params["nids"] = ",".join(sorted(nids))
        if since is not None:
            params["since"] = since.isoformat()
        r = await self.client.request(
            "GET", "/nodes/state", params=params, headers=self.accept, what="VMS /nodes/state"
        )
        return await _decode(r, columnar_read.nodes_read, _nodes_json)

    async def aclose(self) -> None:
        await self.client.aclose()


_EVERY_ERROR_STATUS = tuple(range(400, 600))


class AnalysisProbe:
    """Whether the analysis service can take frames now: ``GET /healthz`` at most every
    ``interval_s``. Down (unreachable, 5xx) or throttling (429): edges routed to it fall back to
    local analysis. Only the service named by EDGE_ANALYSIS_URL is probed (a custom
    ``analysis_url`` has no known health route); a 429 is seen when the service throttles this
    probe too."""

    def __init__(
        self, settings: OptimizerSettings, *, interval_s: float = 5.0, timeout_s: float = 2.0
    ):
        explicit = "analysis_service_url" in settings.model_fields_set and not settings.analysis_url
        self.base_url = str(settings.analysis_service_url).rstrip("/") if explicit else None
        self.interval_s = interval_s
        # /healthz is open: no credential. Every answer is read here (allow), only an
        # unreachable service raises.
        self.client = (
            ServiceClient("analysis", self.base_url, token=None, timeout=timeout_s)
            if self.base_url
            else None
        )
        self._checked_at = float("-inf")
        self._trouble: str | None = None

    async def trouble(self) -> str | None:
        if self.client is None:
            return None
        if time.monotonic() - self._checked_at < self.interval_s:
            return self._trouble
        try:
            r = await self.client.request("GET", "/healthz", allow=_EVERY_ERROR_STATUS)
        except Unavailable as exc:
            self._trouble = f"the analysis service is down ({type(exc.__cause__).__name__})"
        else:
            if r.status_code == 429:
                self._trouble = "the analysis service throttles (429)"
            elif r.status_code >= 500:
                self._trouble = f"the analysis service is down (it answered {r.status_code})"
            else:
                self._trouble = None
        self._checked_at = time.monotonic()
        return self._trouble

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
