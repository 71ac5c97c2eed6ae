"""Set-based reads of the whole fleet for the optimizer and the master.

The JSON is built by Postgres (``json_agg``) and passed through as text: at 100,000 edges,
turning rows into Python objects and back into JSON costs seconds; this costs milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    Select,
    Text,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.models import AiPackage, Cluster, Deployment, Edge, Master
from shared import arrow_copy
from shared.contracts import columnar
from shared.contracts.fleet import DesiredState, ObservedState, PackageStatus

EDGE_COLUMNS = (
    Edge.id,
    Edge.name,
    Edge.nid,
    Edge.cluster_id,
    Edge.latitude,
    Edge.longitude,
    Edge.supports_analysis,
    Edge.status,
    Edge.capacity_cpu,
    Edge.capacity_memory_mb,
    Edge.capacity_gpu,
    Edge.node_name,
    Edge.agent_url,
)
AI_COLUMNS = (
    AiPackage.id,
    AiPackage.filename,
    AiPackage.version,
    AiPackage.version_key,
    AiPackage.ai_class,
    AiPackage.condition,
    AiPackage.status,
    AiPackage.package_digest,
    AiPackage.image_ref,
)
DEPLOYMENT_COLUMNS = (
    Deployment.id,
    Deployment.edge_id,
    Deployment.ai_id,
    Deployment.filename,
    Deployment.desired,
    Deployment.params,
    Deployment.allow_multiple,
    Deployment.generation,
    Deployment.observed,
    Deployment.observed_reason,
    Deployment.observed_at,
    Deployment.observed_generation,
    Deployment.restarts,
    Deployment.requested_by,
    Deployment.decision_id,
)


def silent_clusters(silent_after_s: float) -> Select:
    """Ids of the clusters whose registered master has not been heard from lately."""
    return (
        select(Cluster.id)
        .join(Master, Master.id == Cluster.master_id)
        .where(
            or_(
                Master.last_seen_at.is_(None),
                Master.last_seen_at < func.now() - literal(timedelta(seconds=silent_after_s)),
            )
        )
    )


async def silent_cluster_ids(session: AsyncSession, silent_after_s: float) -> str:
    """The ids of :func:`silent_clusters` as a JSON array (text)."""
    rows = silent_clusters(silent_after_s).subquery("s")
    agg = func.json_agg(aggregate_order_by(rows.c.id, rows.c.id))
    stmt = select(cast(func.coalesce(agg, cast(literal("[]"), JSON)), Text)).select_from(rows)
    return (await session.execute(stmt)).scalar_one()


async def _json_array(session: AsyncSession, stmt: Select) -> str:
    """The rows of ``stmt`` as one JSON array (text), ordered by id, built by Postgres."""
    rows = stmt.subquery("t")
    agg = func.json_agg(aggregate_order_by(literal_column("t"), rows.c.id))
    wrapped = select(cast(func.coalesce(agg, cast(literal("[]"), JSON)), Text)).select_from(rows)
    return (await session.execute(wrapped)).scalar_one()


async def _json_ids(session: AsyncSession, stmt: Select) -> str:
    """The ids ``stmt`` selects as one JSON array of numbers (text), in order."""
    rows = stmt.subquery("t")
    agg = func.json_agg(aggregate_order_by(rows.c.id, rows.c.id))
    wrapped = select(cast(func.coalesce(agg, cast(literal("[]"), JSON)), Text)).select_from(rows)
    return (await session.execute(wrapped)).scalar_one()


Selects = dict[str, Select[*tuple[Any, ...]]]


def snapshot_selects(
    *,
    edge_ids: list[int] | None = None,
    since: datetime | None = None,
    cluster_ids: list[int] | None = None,
    silent_after_s: float = 45.0,
) -> Selects:
    """The rows of a snapshot: ``edges``, ``ai_packages`` (not removed) and live ``deployments``;
    with ``since``, first ``edge_ids`` (every current edge id).

    ``edge_ids`` restricts edges and deployments to those edges, ``cluster_ids`` to the edges of
    those clusters (a site's master reads only its own); ``since`` selects only rows changed after
    it. Each edge carries ``master_silent``: its cluster's registered master has not been heard
    from within ``silent_after_s``.
    """
    master_silent = Edge.cluster_id.in_(silent_clusters(silent_after_s)).label("master_silent")
    edges = select(*EDGE_COLUMNS, master_silent)
    in_clusters = (
        select(Edge.id).where(Edge.cluster_id.in_(cluster_ids)) if cluster_ids is not None else None
    )
    ais = select(*AI_COLUMNS).where(AiPackage.status != PackageStatus.REMOVED)
    # Running ones, and removed ones the master has not yet seen gone.
    deployments = select(*DEPLOYMENT_COLUMNS).where(
        or_(
            Deployment.desired == DesiredState.RUNNING,
            Deployment.observed != ObservedState.REMOVED,
        )
    )
    if edge_ids is not None:
        edges = edges.where(Edge.id.in_(edge_ids))
        deployments = deployments.where(Deployment.edge_id.in_(edge_ids))
    if in_clusters is not None:
        edges = edges.where(Edge.id.in_(in_clusters))
        deployments = deployments.where(Deployment.edge_id.in_(in_clusters))
    selects: Selects = {}
    if since is not None:
        edges = edges.where(Edge.updated_at > since)
        ais = select(*AI_COLUMNS).where(
            AiPackage.updated_at > since
        )  # removed ones too: the mirror drops them
        deployments = select(*DEPLOYMENT_COLUMNS).where(Deployment.updated_at > since)
        if edge_ids is not None:
            deployments = deployments.where(Deployment.edge_id.in_(edge_ids))
        if in_clusters is not None:
            deployments = deployments.where(Deployment.edge_id.in_(in_clusters))
        # Every current edge id (of those clusters), so that a client mirror can drop deleted
        # edges.
        all_ids = select(Edge.id)
        if cluster_ids is not None:
            all_ids = all_ids.where(Edge.cluster_id.in_(cluster_ids))
        selects["edge_ids"] = all_ids
    selects.update(edges=edges, ai_packages=ais, deployments=deployments)
    return selects


async def snapshot_parts(session: AsyncSession, selects: Selects) -> dict[str, str]:
    """The rows of :func:`snapshot_selects`, each table a JSON array as text (``edge_ids`` an
    array of numbers)."""
    return {
        name: await (_json_ids if name == "edge_ids" else _json_array)(session, stmt)
        for name, stmt in selects.items()
    }


async def snapshot_tables(
    session: AsyncSession, selects: Selects, names: frozenset[str] | None = None
) -> dict[str, pa.Table]:
    """The rows of :func:`snapshot_selects` as Arrow tables (shared.contracts.columnar's schemas,
    in id order), for the Arrow form: Postgres streams each table's rows as CSV (``COPY``) and
    pyarrow parses them, so no Python object is made per value. ``names``: only these columns
    (None: all)."""
    tables = {}
    for name, stmt in selects.items():
        schema = columnar.only(columnar.SNAPSHOT_TABLES[name], names)
        tables[name] = await _table(session, stmt, schema)
    return tables


async def _table(session: AsyncSession, stmt: Select, schema: pa.Schema) -> pa.Table:
    """The rows of ``stmt`` ordered by id, the columns of ``schema`` only (a column not asked
    for is not computed: Postgres drops a subquery's unused outputs); times become microseconds
    since the epoch, JSON its text."""
    if not schema.names:
        return schema.empty_table()
    rows = stmt.subquery("t")
    wire = select(*(_wire_value(rows.c[n]).label(n) for n in schema.names))
    return await arrow_copy.copy_table(session, wire.select_from(rows).order_by(rows.c.id), schema)


def _wire_value(c: Any) -> Any:
    """A column as the Arrow form carries it: numbers and booleans as they are, times as
    microseconds since the epoch, everything else (text, enums, JSON) as text."""
    kind = getattr(c.type, "impl", c.type)
    if isinstance(kind, DateTime):
        return cast(func.extract("epoch", c) * 1_000_000, BigInteger)
    if isinstance(kind, (Integer, Float, Boolean)):
        return c
    return cast(c, Text)


async def database_now(session: AsyncSession) -> datetime:
    return (await session.execute(select(func.now()))).scalar_one()
