from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.setup.conditions import service as conditions
from services.setup.fleet import repository
from services.setup.settings import SettingsDep
from shared.auth import ReaderAuth
from shared.contracts import columnar
from shared.contracts.fleet import FleetSnapshot
from shared.db import SessionDep
from shared.errors import Invalid

router = APIRouter(prefix="/fleet", tags=["fleet"])

SNAPSHOT_DOC = """
Everything a decision needs in one answer: `edges`, `ai_packages` (not removed), `deployments`
(desired running, and removed ones the master has not yet seen gone), `conditions` and
`generated_at` (the database clock when the snapshot was read).

- `edge_ids=1,2,3`: only those edges and their deployments.
- `cluster_ids=1,2`: only the edges of those clusters and their deployments (a site's master
  reads its own clusters).
- Each edge carries `master_silent`: its cluster's registered master has not been heard from
  within `SETUP_MASTER_SILENT_AFTER_S`; `silent_cluster_ids` lists those clusters (in `since`
  answers too, where unchanged edges are not repeated).
- `since=<generated_at of an earlier snapshot>`: only rows changed after it (removed AIs and
  deployments included, so that a mirror can drop them) plus `edge_ids`, every current edge id.
  Pass an earlier snapshot's `generated_at` minus a few seconds: transactions that were in flight
  at that moment commit with older timestamps.
- `Accept: application/vnd.apache.arrow.stream`: the same answer as Arrow IPC streams, one per
  table (`edges`, `ai_packages`, `deployments`, and `edge_ids` in `since` answers), the scalars
  as JSON in the first schema's `meta` (shared.contracts.columnar): a fraction of the JSON's
  size and parse time for a whole fleet. `columns=id,nid,...` (Arrow form only): only those
  columns, in each table that has them (a name no table has is refused); the JSON answer is
  always whole.
"""


def _parse_ids(value: str | None, field: str = "edge_ids") -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise Invalid(f"{field} must be a comma-separated list of numbers", field=field) from exc


@router.get(
    "/snapshot",
    summary="Edges, AI packages, live deployments and the condition mapping in one answer",
    description=SNAPSHOT_DOC,
    responses={
        200: {
            "model": FleetSnapshot,
            "description": "the snapshot",
            "content": columnar.openapi_content(),
        }
    },
)
async def snapshot(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: ReaderAuth,
    edge_ids: Annotated[str | None, Query(description="comma-separated edge ids")] = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601 time with zone: only rows changed after it")
    ] = None,
    cluster_ids: Annotated[
        str | None, Query(description="comma-separated cluster ids: only their edges")
    ] = None,
    columns: Annotated[
        str | None,
        Query(description="Arrow form: comma-separated column names, only those columns"),
    ] = None,
) -> Response:
    if since is not None and since.tzinfo is None:
        raise Invalid("since needs a time zone (e.g. 2026-11-22T03:00:00+00:00)", field="since")
    try:
        names = columnar.columns_asked(columns, columnar.SNAPSHOT_TABLES)
    except ValueError as exc:
        raise Invalid(str(exc), field="columns") from exc
    now = await repository.database_now(session)
    silent_after = float(settings.master_silent_after_s)
    selects = repository.snapshot_selects(
        edge_ids=_parse_ids(edge_ids),
        since=since,
        cluster_ids=_parse_ids(cluster_ids, "cluster_ids"),
        silent_after_s=silent_after,
    )
    silent_ids = await repository.silent_cluster_ids(session, silent_after)
    mapping = (await conditions.read(session)).model_dump()
    if columnar.wants_arrow(request.headers.get("accept")):
        tables = await repository.snapshot_tables(session, selects, names)
        meta = {
            "conditions": mapping,
            "generated_at": now.isoformat(),
            "silent_cluster_ids": orjson.loads(silent_ids),
        }
        arrow = await asyncio.to_thread(columnar.encode, list(tables.items()), meta)
        return Response(arrow, media_type=columnar.ARROW_STREAM)
    parts = await repository.snapshot_parts(session, selects)
    parts["silent_cluster_ids"] = silent_ids
    parts["conditions"] = orjson.dumps(mapping).decode()
    parts["generated_at"] = orjson.dumps(now.isoformat()).decode()
    body = "{" + ",".join(f'"{key}":{value}' for key, value in parts.items()) + "}"
    return Response(body.encode(), media_type="application/json")
