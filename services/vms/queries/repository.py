"""Read queries (SQLAlchemy session on the service's engine)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import arrow_copy
from shared.contracts import columnar

_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

SERIES_SQL = {
    "usage": f"""
        SELECT date_bin(:step, ts, {_ORIGIN}) AS t, count(*) AS samples,
               avg(cpu) AS cpu, max(cpu) AS cpu_max,
               avg(memory) AS memory, max(memory) AS memory_max,
               (array_agg(func ORDER BY ts DESC))[1] AS func
        FROM vms.usage WHERE nid = :nid AND ts >= :start AND ts < :end
        GROUP BY 1 ORDER BY 1""",
    "environment": f"""
        SELECT date_bin(:step, ts, {_ORIGIN}) AS t, count(*) AS samples,
               mode() WITHIN GROUP (ORDER BY condition) AS condition,
               mode() WITHIN GROUP (ORDER BY result) AS result,
               (array_agg(condition ORDER BY ts DESC))[1] AS last_condition
        FROM vms.environment WHERE nid = :nid AND ts >= :start AND ts < :end
        GROUP BY 1 ORDER BY 1""",
    "detections": f"""
        SELECT date_bin(:step, ts, {_ORIGIN}) AS t, count(*) AS samples,
               avg(fps) AS fps, sum(detected) AS detected, sum(below_threshold) AS below_threshold,
               min(min_confidence) AS min_confidence, avg(inference_mean_ms) AS inference_mean_ms,
               array_remove(array_agg(DISTINCT analysed_by), NULL) AS analysed_by
        FROM vms.detections WHERE nid = :nid AND ts >= :start AND ts < :end
        GROUP BY 1 ORDER BY 1""",
}


def _iso(col: str) -> str:
    """A timestamptz as text exactly as Python's ``datetime.isoformat()`` writes it in UTC
    (microseconds only when there are some), whatever the session's TimeZone; NULL stays NULL."""
    pattern = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""
    return f"replace(to_char({col} AT TIME ZONE 'UTC', {pattern}), '.000000+', '+')"


# The columns of one GET /nodes/state item, in order (the same fields as the former Python view);
# json_agg turns each row into an object with these keys.
_ITEM_COLUMNS = f"""
    nid, known, authenticated, condition, condition_code, previous_condition,
    coalesce(streak, 0) AS streak,
    {_iso("condition_since")} AS condition_since, {_iso("environment_at")} AS environment_at,
    CASE WHEN usage_at IS NULL THEN NULL ELSE json_build_object(
        'at', {_iso("usage_at")}, 'cpu', cpu, 'memory', memory, 'func', func,
        'cpu_avg', cpu_avg, 'memory_avg', memory_avg) END AS usage,
    CASE WHEN detections_at IS NULL THEN NULL ELSE (
        jsonb_build_object('at', {_iso("detections_at")})
        || CASE WHEN jsonb_typeof(detections) = 'object' THEN detections ELSE '{{}}'::jsonb END
        || jsonb_build_object('low_confidence_share', low_confidence_share))::json
        END AS detections,
    {_iso("last_seen")} AS last_seen,
    last_seen IS NULL OR now() - last_seen > make_interval(secs => :stale_s) AS stale"""

# Registered nodes that never reported: known, stale, no data.
_SILENT_COLUMNS = """
    s.nid, true, false, NULL, NULL, NULL, 0, NULL, NULL, NULL::json, NULL::json, NULL, true"""


async def node_states_json(
    session: AsyncSession,
    *,
    nids: list[str] | None,
    silent: list[str] | None,
    since: datetime | None,
    stale_after_s: float,
) -> tuple[str, str]:
    """The items of GET /nodes/state as one JSON array (text) built by Postgres, and the database
    clock (``generated_at``, ISO text).

    ``silent``: registered nids to list (stale, empty) where they have no row yet. ``since``: only
    rows written after it, and rows that turned stale after it (staleness moves with the clock,
    not with writes)."""
    where, params = _state_filters(nids, since, stale_after_s)
    parts = [f"SELECT {_ITEM_COLUMNS} FROM vms.node_state WHERE {where}"]
    if silent:
        parts.append(
            f"SELECT {_SILENT_COLUMNS} FROM unnest(CAST(:silent AS text[])) AS s(nid) "
            "WHERE NOT EXISTS (SELECT 1 FROM vms.node_state n WHERE n.nid = s.nid)"
        )
        params["silent"] = silent
    sql = f"""
        WITH rows AS ({" UNION ALL ".join(parts)})
        SELECT coalesce(
                   (SELECT json_agg(r ORDER BY r.nid COLLATE "C") FROM rows AS r), '[]'::json
               )::text AS items,
               {_iso("now()")} AS generated_at"""
    row = (await session.execute(text(sql), params)).one()
    return row.items, row.generated_at


def _micros(col: str) -> str:
    """A timestamptz as microseconds since the epoch (NULL stays NULL)."""
    return f"(extract(epoch FROM {col}) * 1000000)::int8"


def _det_text(key: str) -> str:
    return (
        f"CASE WHEN detections_at IS NOT NULL AND jsonb_typeof(detections -> '{key}') = 'string' "
        f"THEN detections ->> '{key}' END"
    )


def _det_number(key: str) -> str:
    return (
        f"CASE WHEN detections_at IS NOT NULL AND jsonb_typeof(detections -> '{key}') = 'number' "
        f"THEN (detections ->> '{key}')::float8 END"
    )


# The columns of GET /nodes/state's Arrow form (shared.contracts.columnar.NODES), in order: the
# JSON item's fields, usage and detections flattened.
_COLUMNS = f"""
    nid, known, authenticated, condition, condition_code, previous_condition,
    coalesce(streak, 0)::int8 AS streak,
    {_micros("condition_since")} AS condition_since, {_micros("environment_at")} AS environment_at,
    {_micros("last_seen")} AS last_seen,
    last_seen IS NULL OR now() - last_seen > make_interval(secs => :stale_s) AS stale,
    {_micros("usage_at")} AS usage_at,
    CASE WHEN usage_at IS NOT NULL THEN cpu END AS cpu,
    CASE WHEN usage_at IS NOT NULL THEN memory END AS memory,
    CASE WHEN usage_at IS NOT NULL THEN func END AS func,
    CASE WHEN usage_at IS NOT NULL THEN cpu_avg END AS cpu_avg,
    CASE WHEN usage_at IS NOT NULL THEN memory_avg END AS memory_avg,
    {_micros("detections_at")} AS detections_at,
    CASE WHEN detections_at IS NOT NULL THEN (CASE WHEN jsonb_typeof(detections) = 'object'
        THEN detections ELSE '{{}}'::jsonb END)::text END AS detections,
    {_det_number("frames")} AS frames, {_det_number("frames_sent_up")} AS frames_sent_up,
    CASE WHEN detections_at IS NOT NULL THEN low_confidence_share END AS low_confidence_share,
    {_det_text("analysed_by")} AS analysed_by,
    {_det_text("source_unavailable")} AS source_unavailable,
    {_det_text("analysis_unavailable")} AS analysis_unavailable"""

_SILENT_ROW = """
    s.nid, true, false, NULL, NULL, NULL, 0::int8, NULL::int8, NULL::int8, NULL::int8, true,
    NULL::int8, NULL::float8, NULL::float8, NULL, NULL::float8, NULL::float8, NULL::int8, NULL,
    NULL::float8, NULL::float8, NULL::float8, NULL, NULL, NULL"""


async def node_state_table(
    session: AsyncSession,
    *,
    nids: list[str] | None,
    silent: list[str] | None,
    since: datetime | None,
    stale_after_s: float,
    names: frozenset[str] | None = None,
) -> tuple[pa.Table, str]:
    """The rows of :func:`node_states_json` as an Arrow table (shared.contracts.columnar.NODES,
    ordered by nid), and the database clock (``generated_at``, ISO text), for the Arrow form:
    Postgres streams the rows as CSV (``COPY``) and pyarrow parses them, so no Python object is
    made per value. ``names``: only these columns (None: all; a column not asked for is not
    computed). Both statements run in the session's transaction: one ``now()``."""
    where, params = _state_filters(nids, since, stale_after_s)
    parts = [f"SELECT {_COLUMNS} FROM vms.node_state WHERE {where}"]
    if silent:
        parts.append(
            f"SELECT {_SILENT_ROW} FROM unnest(CAST(:silent AS text[])) AS s(nid) "
            "WHERE NOT EXISTS (SELECT 1 FROM vms.node_state n WHERE n.nid = s.nid)"
        )
        params["silent"] = silent
    generated_at = (await session.execute(text(f"SELECT {_iso('now()')}"))).scalar_one()
    schema = columnar.only(columnar.NODES, names)
    if not schema.names:
        return schema.empty_table(), generated_at
    wanted = ", ".join(f"r.{name}" for name in schema.names)
    sql = f"""
        SELECT {wanted} FROM ({" UNION ALL ".join(parts)}) AS r ORDER BY r.nid COLLATE "C"
    """
    table = await arrow_copy.copy_table(session, text(sql).bindparams(**params), schema)
    return table, generated_at


def _state_filters(
    nids: list[str] | None, since: datetime | None, stale_after_s: float
) -> tuple[str, dict[str, Any]]:
    where = ["true"]
    params: dict[str, Any] = {"stale_s": float(stale_after_s)}
    if nids is not None:
        where.append("nid = ANY(CAST(:nids AS text[]))")
        params["nids"] = nids
    if since is not None:
        where.append(
            "(updated_at > :since OR (last_seen + make_interval(secs => :stale_s) > :since "
            "AND last_seen + make_interval(secs => :stale_s) <= now()))"
        )
        params["since"] = since
    return " AND ".join(where), params


async def has_node(session: AsyncSession, nid: str) -> bool:
    """Whether the node ever reported (an unregistered node's records are kept when flagged)."""
    query = text("SELECT EXISTS (SELECT 1 FROM vms.node_state WHERE nid = :nid)")
    return bool(await session.scalar(query, {"nid": nid}))


async def series(
    session: AsyncSession, kind: str, nid: str, start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(SERIES_SQL[kind]), {"nid": nid, "start": start, "end": end, "step": step}
    )
    return [dict(r._mapping) for r in rows]


def _detection_filters(
    nid: str | None,
    cls: str | None,
    confidence_below: float | None,
    start: datetime | None,
    end: datetime | None,
) -> tuple[str, dict[str, Any]]:
    where = ["true"]
    params: dict[str, Any] = {}
    if nid is not None:
        where.append("nid = :nid")
        params["nid"] = nid
    if start is not None:
        where.append("ts >= :start")
        params["start"] = start
    if end is not None:
        where.append("ts < :end")
        params["end"] = end
    if cls is not None and confidence_below is not None:
        # One detection of that class under that confidence (not any class low, another class
        # present).
        where.append(
            "jsonb_path_exists(detections, '$[*] ? (@.class == $c && @.confidence < $t)', "
            "jsonb_build_object('c', CAST(:cls AS text), 't', CAST(:below AS float8)))"
        )
        params.update(cls=cls, below=confidence_below)
    elif cls is not None:
        where.append(
            "(counts ? CAST(:cls AS text) OR "
            "jsonb_path_exists(detections, '$[*] ? (@.class == $c)', "
            "jsonb_build_object('c', CAST(:cls AS text))))"
        )
        params["cls"] = cls
    elif confidence_below is not None:
        where.append("min_confidence < :below")
        params["below"] = confidence_below
    return " AND ".join(where), params


async def detections(
    session: AsyncSession,
    *,
    nid: str | None,
    cls: str | None,
    confidence_below: float | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    where, params = _detection_filters(nid, cls, confidence_below, start, end)
    total = (
        await session.execute(text(f"SELECT count(*) FROM vms.detections WHERE {where}"), params)
    ).scalar_one()
    rows = await session.execute(
        text(
            f"""SELECT id, nid, ts, received_at, model, model_version, fps, frames,
                    inference_mean_ms, inference_p50_ms, inference_max_ms, conf_threshold,
                    counts, detections, detected, below_threshold, frames_sent_up,
                    min_confidence, authenticated, known, analysed_by
                FROM vms.detections WHERE {where}
                ORDER BY ts DESC, id DESC LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    )
    return [dict(r._mapping) for r in rows], total
