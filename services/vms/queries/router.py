"""Read routes (ReaderAuth: any valid token, or none where EDGE_OPEN_READS=true)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.vms.queries.service import QueriesDep
from shared.auth import ReaderAuth
from shared.contracts import columnar
from shared.contracts.nodes import NodeSeries, NodeStates
from shared.db import SessionDep
from shared.errors import Invalid

router = APIRouter(tags=["queries"])


@router.get(
    "/nodes/state",
    summary="Current state of every node, in one answer",
    description="JSON by default; with `Accept: application/vnd.apache.arrow.stream` the same "
    "answer as an Arrow IPC stream (one table `nodes`, usage and detections flattened into "
    "columns, the scalars as JSON in the schema's `meta`: shared.contracts.columnar), a "
    "fraction of the JSON's size and parse time for a whole fleet; `columns=nid,stale,...` "
    "(Arrow form only) asks for only those columns (a name the table lacks is refused).",
    responses={
        200: {
            "model": NodeStates,
            "description": "every node's state",
            "content": columnar.openapi_content(),
        }
    },
)
async def nodes_state(
    request: Request,
    queries: QueriesDep,
    session: SessionDep,
    _: ReaderAuth,
    nids: Annotated[str | None, Query(description="comma list of node ids; default all")] = None,
    include_silent: Annotated[
        bool, Query(description="also list registered nodes that never reported")
    ] = True,
    since: Annotated[
        datetime | None,
        Query(
            description="ISO 8601 time with zone (an earlier answer's "
            "generated_at minus a few seconds): "
            "only nodes whose state changed after it"
        ),
    ] = None,
    columns: Annotated[
        str | None,
        Query(description="Arrow form: comma-separated column names, only those columns"),
    ] = None,
) -> Response:
    wanted = [n.strip() for n in nids.split(",") if n.strip()] if nids else None
    try:
        names = columnar.columns_asked(columns, columnar.NODE_TABLES)
    except ValueError as exc:
        raise Invalid(str(exc), field="columns") from exc
    if columnar.wants_arrow(request.headers.get("accept")):
        body = await queries.fleet_state_arrow(session, wanted, include_silent, since, names)
        return Response(body, media_type=columnar.ARROW_STREAM)
    body = await queries.fleet_state(session, wanted, include_silent, since)
    return Response(body, media_type="application/json")


@router.get(
    "/nodes/{nid}/series",
    response_model=NodeSeries,
    summary="A node's observations over a time range, downsampled",
)
async def node_series(
    queries: QueriesDep,
    session: SessionDep,
    _: ReaderAuth,
    nid: str,
    kind: Literal["usage", "environment", "detections"] = "usage",
    start: Annotated[datetime | None, Query(description="ISO 8601; default end - 1 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601; default now")] = None,
    step: Annotated[str, Query(description="bucket: seconds or 30s, 5m, 1h, 1d")] = "60s",
) -> dict[str, Any]:
    return await queries.series(session, nid, kind, start, end, step)


@router.get("/detections", summary="Detection summaries with filters, newest first, paginated")
async def list_detections(
    queries: QueriesDep,
    session: SessionDep,
    _: ReaderAuth,
    nid: str | None = None,
    class_: Annotated[
        str | None, Query(alias="class", description="a class name, e.g. person")
    ] = None,
    confidence_below: Annotated[
        float | None,
        Query(ge=0, le=1, description="a detection (of that class) under this confidence"),
    ] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    return await queries.detections(
        session,
        nid=nid,
        cls=class_,
        confidence_below=confidence_below,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )
