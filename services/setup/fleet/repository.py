"""Set-based reads of the whole fleet for the optimizer and the master (one query per table)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.models import AiPackage, Deployment, Edge

EDGE_COLUMNS = (
    Edge.id, Edge.name, Edge.nid, Edge.cluster_id, Edge.latitude, Edge.longitude, Edge.supports_analysis,
    Edge.status, Edge.capacity_cpu, Edge.capacity_memory_mb, Edge.capacity_gpu, Edge.node_name, Edge.agent_url,
)
AI_COLUMNS = (
    AiPackage.id, AiPackage.filename, AiPackage.version, AiPackage.version_key, AiPackage.ai_class,
    AiPackage.condition, AiPackage.status, AiPackage.package_digest, AiPackage.image_ref,
)
DEPLOYMENT_COLUMNS = (
    Deployment.id, Deployment.edge_id, Deployment.ai_id, Deployment.filename, Deployment.desired, Deployment.params,
    Deployment.allow_multiple, Deployment.generation, Deployment.observed, Deployment.observed_reason,
    Deployment.observed_at, Deployment.observed_generation, Deployment.restarts, Deployment.requested_by,
    Deployment.decision_id,
)


async def _rows(session: AsyncSession, stmt) -> list[dict[str, Any]]:
    result = await session.execute(stmt)
    return [dict(row) for row in result.mappings().all()]


async def snapshot(session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    return {
        "edges": await _rows(session, select(*EDGE_COLUMNS).order_by(Edge.id)),
        "ai_packages": await _rows(session, select(*AI_COLUMNS).where(AiPackage.status != "removed").order_by(AiPackage.id)),
        # Running ones, and removed ones the master has not yet seen gone.
        "deployments": await _rows(
            session,
            select(*DEPLOYMENT_COLUMNS)
            .where(or_(Deployment.desired == "running", Deployment.observed != "removed"))
            .order_by(Deployment.id),
        ),
    }
