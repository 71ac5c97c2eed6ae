"""Read queries (SQLAlchemy session on the service's engine)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

SERIES_SQL = {
    "usage": f"""
        SELECT date_bin(:step, ts, {_ORIGIN}) AS t, count(*) AS samples,
               avg(cpu) AS cpu, max(cpu) AS cpu_max, avg(memory) AS memory, max(memory) AS memory_max,
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
               min(min_confidence) AS min_confidence, avg(inference_mean_ms) AS inference_mean_ms
        FROM vms.detections WHERE nid = :nid AND ts >= :start AND ts < :end
        GROUP BY 1 ORDER BY 1""",
}


async def node_states(session: AsyncSession, nids: list[str] | None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM vms.node_state"
    params: dict[str, Any] = {}
    if nids is not None:
        sql += " WHERE nid = ANY(:nids)"
        params["nids"] = nids
    rows = await session.execute(text(sql + " ORDER BY nid"), params)
    return [dict(r._mapping) for r in rows]


async def series(
    session: AsyncSession, kind: str, nid: str, start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    rows = await session.execute(text(SERIES_SQL[kind]), {"nid": nid, "start": start, "end": end, "step": step})
    return [dict(r._mapping) for r in rows]


def _detection_filters(
    nid: str | None, cls: str | None, confidence_below: float | None, start: datetime | None, end: datetime | None
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
        # One detection of that class under that confidence (not any class low, another class present).
        where.append(
            "jsonb_path_exists(detections, '$[*] ? (@.class == $c && @.confidence < $t)', "
            "jsonb_build_object('c', CAST(:cls AS text), 't', CAST(:below AS float8)))"
        )
        params.update(cls=cls, below=confidence_below)
    elif cls is not None:
        where.append(
            "(counts ? CAST(:cls AS text) OR jsonb_path_exists(detections, '$[*] ? (@.class == $c)', "
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
    total = (await session.execute(text(f"SELECT count(*) FROM vms.detections WHERE {where}"), params)).scalar_one()
    rows = await session.execute(
        text(
            f"""SELECT id, nid, ts, received_at, model, model_version, fps, frames, inference_mean_ms,
                       inference_p50_ms, inference_max_ms, conf_threshold, counts, detections, detected,
                       below_threshold, frames_sent_up, min_confidence, authenticated, known
                FROM vms.detections WHERE {where}
                ORDER BY ts DESC, id DESC LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    )
    return [dict(r._mapping) for r in rows], total


