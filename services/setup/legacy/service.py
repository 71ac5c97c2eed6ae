"""The field's /request_* routes, mapped onto the resource API's services."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.ai_packages import service as ai_packages
from services.setup.deployments import service as deployments
from services.setup.deployments.schemas import DeploymentCreate, DeploymentUpdate
from services.setup.legacy.schemas import DeviceRequest
from services.setup.master_client import MasterCalls
from services.setup.models import Deployment, Edge, LegacyRequest
from shared.contracts.fleet import DesiredState
from shared.errors import Invalid, NotFound


async def record(session: AsyncSession, route: str, payload: dict, outcome: str) -> None:
    session.add(LegacyRequest(route=route, payload=payload, outcome=outcome))


async def target_edges(session: AsyncSession, req: DeviceRequest) -> list[Edge]:
    if req.eid is not None:
        edge = await session.get(Edge, req.eid)
        if edge is None:
            raise NotFound(f"edge {req.eid} does not exist", field="eid")
        return [edge]
    if req.edge:
        edge = await session.scalar(
            select(Edge).where(or_(Edge.name == req.edge, Edge.nid == req.edge))
        )
        if edge is None:
            raise NotFound(f"edge {req.edge!r} does not exist", field="edge")
        return [edge]
    # The field's request names only the AI: it went to every node of its (single) cluster.
    return list((await session.scalars(select(Edge).order_by(Edge.id))).all())


async def deploy_target(session: AsyncSession, req: DeviceRequest) -> Edge:
    """The one edge a deployment goes to. The field's request names only the AI (it had one
    node): without ``eid`` it is deployed only when a single edge is registered."""
    edges = await target_edges(session, req)
    if len(edges) != 1:
        raise Invalid(
            f"{len(edges)} edges are registered: name the edge to deploy to with eid (or edge)",
            field="eid",
        )
    return edges[0]


async def deploy(session: AsyncSession, req: DeviceRequest, master: MasterCalls) -> list[int]:
    ai = await ai_packages.get(session, req.aid, field="aid")
    touched = []
    for edge in [await deploy_target(session, req)]:
        current = await session.scalar(
            select(Deployment).where(
                Deployment.edge_id == edge.id,
                Deployment.filename == ai.filename,
                Deployment.desired == DesiredState.RUNNING,
                Deployment.allow_multiple.is_(False),
            )
        )
        if current is None:
            d = await deployments.create(
                session, DeploymentCreate(edge_id=edge.id, ai_id=ai.id), requested_by="operator"
            )
        else:
            d = await deployments.update_one(
                session, current.id, DeploymentUpdate(ai_id=ai.id), requested_by="operator"
            )
        touched.append(d.id)
        await master.request_reconcile(session, edge_ids=[edge.id])
    return touched


async def undeploy(session: AsyncSession, req: DeviceRequest, master: MasterCalls) -> list[int]:
    await ai_packages.get(session, req.aid, field="aid")
    edge_ids = [e.id for e in await target_edges(session, req)]
    rows = (
        await session.scalars(
            select(Deployment).where(
                Deployment.ai_id == req.aid,
                Deployment.desired == DesiredState.RUNNING,
                Deployment.edge_id.in_(edge_ids),
            )
        )
    ).all()
    for d in rows:
        await deployments.remove(session, d.id, requested_by="operator")
    await master.request_reconcile(session, edge_ids={d.edge_id for d in rows})
    return [d.id for d in rows]
