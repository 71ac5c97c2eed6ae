from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.clusters import service as clusters
from services.setup.common import get_or_404
from services.setup.edges import tokens
from services.setup.edges.rtsp import masked
from services.setup.edges.schemas import EdgeCreate, EdgeUpdate
from services.setup.models import Edge
from services.setup.secret_box import SecretBox
from services.setup.settings import SetupSettings
from shared.contracts.fleet import NodeIds
from shared.contracts.registry import EdgeOut
from shared.db import flush
from shared.edge_tokens import token_hash
from shared.errors import Invalid, NotFound, Unauthorized
from shared.pagination import PageParams, fetch_page

log = logging.getLogger("edge.setup.edges")


def to_out(edge: Edge) -> EdgeOut:
    gps = (
        None if edge.latitude is None else {"latitude": edge.latitude, "longitude": edge.longitude}
    )
    return EdgeOut(
        id=edge.id,
        name=edge.name,
        nid=edge.nid,
        cluster_id=edge.cluster_id,
        type=edge.type,
        gps=gps,
        address=edge.address,
        ip=edge.ip,
        isSupportAnnalysis="YES" if edge.supports_analysis else "NO",
        url=edge.rtsp_url,  # stored masked
        description=edge.description,
        node_name=edge.node_name,
        agent_url=masked(edge.agent_url),
        capacity={
            "cpu": edge.capacity_cpu,
            "memory_mb": edge.capacity_memory_mb,
            "gpu": edge.capacity_gpu,
        },
        time_zone=edge.time_zone,
        device_login=edge.device_login,
        status=edge.status,
        created_at=edge.created_at,
        updated_at=edge.updated_at,
    )


def _columns(data: EdgeCreate | EdgeUpdate, box: SecretBox) -> dict:
    """Payload fields -> table columns (only those the request set)."""
    given = data.model_dump(exclude_unset=True)
    out: dict = {}
    for key in (
        "name",
        "nid",
        "type",
        "address",
        "ip",
        "description",
        "node_name",
        "agent_url",
        "status",
        "cluster_id",
        "time_zone",
        "device_login",
    ):
        if key in given:
            out[key] = given[key]
    if "supports_analysis" in given:
        out["supports_analysis"] = bool(given["supports_analysis"])
    if "gps" in given:
        gps = given["gps"]
        out["latitude"] = gps["latitude"] if gps else None
        out["longitude"] = gps["longitude"] if gps else None
    if "url" in given:
        out.update(camera_columns(given["url"] or None, box))
    if "capacity" in given and given["capacity"] is not None:
        cap = given["capacity"]
        out.update(
            capacity_cpu=cap.get("cpu"),
            capacity_memory_mb=cap.get("memory_mb"),
            capacity_gpu=cap.get("gpu"),
        )
    for text_column in ("address", "description"):
        if out.get(text_column, "") is None:
            out[text_column] = ""
    return out


def camera_columns(url: str | None, box: SecretBox) -> dict[str, str | None]:
    """The camera URL as stored: masked to show, and whole only encrypted with the newest key."""
    if url is None:
        return {"rtsp_url": None, "rtsp_secret": None}
    return {"rtsp_url": masked(url), "rtsp_secret": box.encrypt(url)}


async def create(
    session: AsyncSession, data: EdgeCreate, settings: SetupSettings
) -> tuple[Edge, str]:
    columns = _columns(data, settings.secret_box())
    if data.cluster_id is None:
        columns["cluster_id"] = (await clusters.get_or_create_default(session)).id
    else:
        await clusters.get(session, data.cluster_id, field="cluster_id")
    if data.nid is None:
        columns["nid"] = await next_free_nid(session)
    edge = Edge(**columns)
    token, _ = await tokens.issue(session, edge.nid, settings)
    edge.token_hash = token_hash(token)
    session.add(edge)
    await flush(session)
    return edge, token


async def next_free_nid(session: AsyncSession) -> str:
    """The field numbers its nodes 0x01, 0x02...: one past the highest such nid in use."""
    field_style = select(Edge.nid).where(Edge.nid.regexp_match("^0x[0-9a-fA-F]{1,8}$"))
    nids = (await session.scalars(field_style)).all()
    highest = max((int(n, 16) for n in nids), default=0)
    return f"0x{highest + 1:02x}"


async def get(session: AsyncSession, edge_id: int, *, field: str = "id") -> Edge:
    return await get_or_404(session, Edge, edge_id, what="edge", field=field)


async def find(session: AsyncSession, ref: str | int, *, field: str = "edge") -> Edge:
    """The one resolver of the ``/edges/{edge}`` routes: an edge by id, nid or exact name (in that
    order; names and nids are unique, an id wins over a nid written with digits only)."""
    key = str(ref)
    if key.isdigit() and int(key) <= 2**31 - 1:  # the id column's range
        edge = await session.get(Edge, int(key))
        if edge is not None:
            return edge
    query = select(Edge).where((Edge.nid == key) | (Edge.name == key)).order_by(Edge.nid != key)
    found = (await session.scalars(query.limit(1))).first()
    if found is None:
        raise NotFound(f"no edge with id, name or nid {key!r}", field=field)
    return found


async def list_page(
    session: AsyncSession,
    params: PageParams,
    *,
    cluster_id: int | None,
    name: str | None,
    nid: str | None,
    status: str | None,
    supports_analysis: bool | None,
):
    stmt = select(Edge).order_by(Edge.id)
    if cluster_id is not None:
        stmt = stmt.where(Edge.cluster_id == cluster_id)
    if name:
        stmt = stmt.where(Edge.name.ilike(f"%{name}%"))
    if nid:
        stmt = stmt.where(Edge.nid == nid)
    if status:
        stmt = stmt.where(Edge.status == status)
    if supports_analysis is not None:
        stmt = stmt.where(Edge.supports_analysis.is_(supports_analysis))
    return await fetch_page(session, stmt, params)


async def update(
    session: AsyncSession, ref: str | int, data: EdgeUpdate, settings: SetupSettings
) -> Edge:
    edge = await find(session, ref)
    columns = _columns(data, settings.secret_box())
    if columns.get("cluster_id") is not None:
        await clusters.get(session, columns["cluster_id"], field="cluster_id")
    elif "cluster_id" in columns:
        del columns["cluster_id"]
    for key, value in columns.items():
        setattr(edge, key, value)
    await flush(session)
    return edge


async def rotate_token(
    session: AsyncSession, ref: str | int, settings: SetupSettings
) -> tuple[Edge, str]:
    edge = await find(session, ref)
    token = await tokens.rotate(session, edge.nid, settings)  # every older token dies on commit
    edge.token_hash = token_hash(token)
    await flush(session)
    return edge, token


async def renew_token(session: AsyncSession, nid: str, settings: SetupSettings) -> tuple[Edge, str]:
    """A fresh token for an edge that proved itself with a valid one (the agent, before expiry)."""
    edge = (await session.execute(select(Edge).where(Edge.nid == nid))).scalar_one_or_none()
    if edge is None:
        raise Unauthorized(f"node {nid!r} is not registered")
    token, _ = await tokens.issue(session, nid, settings)
    edge.token_hash = token_hash(token)
    await flush(session)
    return edge, token


async def workload_token(
    session: AsyncSession, ref: str | int, settings: SetupSettings
) -> tuple[Edge, str]:
    """A token for the workloads the master runs on the edge (revocable, expiring like any)."""
    edge = await find(session, ref)
    token, _ = await tokens.issue(session, edge.nid, settings)
    return edge, token


async def device_credential(
    session: AsyncSession, ref: str | int, days: int, settings: SetupSettings
) -> tuple[Edge, str]:
    """A long-lived token for a field device without an agent (it cannot renew one): ``days``
    long, at most SETUP_DEVICE_CREDENTIAL_MAX_DAYS. Revoked like any of the edge's tokens
    (``revoke_tokens``, a rotation, or the edge's removal)."""
    if days > settings.device_credential_max_days:
        raise Invalid(
            f"at most {settings.device_credential_max_days} days "
            "(SETUP_DEVICE_CREDENTIAL_MAX_DAYS)",
            field="days",
        )
    edge = await find(session, ref)
    token, token_id = await tokens.issue(session, edge.nid, settings, ttl_s=days * 86400)
    log.info("device credential %d for edge %s issued for %d days", token_id, edge.nid, days)
    return edge, token


async def revoke_tokens(session: AsyncSession, ref: str | int) -> Edge:
    """Every token of the edge issued so far dies on commit (its agent's, its workloads', its
    devices' credentials); the edge stays registered."""
    edge = await find(session, ref)
    await tokens.revoke_all(session, edge.nid)
    log.info("every token of edge %s revoked", edge.nid)
    return edge


async def delete(session: AsyncSession, ref: str | int) -> None:
    edge = await find(session, ref)
    await tokens.revoke_all(session, edge.nid)  # its tokens die with it
    await session.delete(edge)
    await flush(session)


async def node_ids(session: AsyncSession) -> NodeIds:
    query = select(Edge.nid, Edge.name, Edge.time_zone, Edge.device_login).order_by(Edge.id)
    rows = (await session.execute(query)).all()
    return NodeIds(
        items=[r.nid for r in rows],
        names={r.name: r.nid for r in rows},
        time_zones={r.nid: r.time_zone for r in rows if r.time_zone},
        device_logins={r.device_login: r.nid for r in rows if r.device_login},
    )


async def camera_url(session: AsyncSession, ref: str | int, settings: SetupSettings) -> str | None:
    edge = await find(session, ref)
    if edge.rtsp_secret is None:
        return None
    return settings.secret_box().decrypt(edge.rtsp_secret)
