from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from services.setup.edges import service, tokens
from services.setup.edges.schemas import (
    CredentialIn,
    EdgeCreate,
    EdgeToken,
    EdgeUpdate,
)
from services.setup.settings import SettingsDep
from shared.auth import EdgeAuth, OperatorAuth, ReaderAuth, ServiceAuth
from shared.contracts.credentials import TokenRevocations
from shared.contracts.fleet import EdgeStatus, NodeIds
from shared.contracts.master import EdgeCamera
from shared.contracts.registry import EdgeCreated, EdgeOut
from shared.db import SessionDep
from shared.deps import KeyRingDep
from shared.edge_tokens import decode_edge_token
from shared.pagination import Page, PageDep
from shared.signing import KeyRing

router = APIRouter(prefix="/edges", tags=["edges"])

# Every /edges/{edge} route takes the edge's id, name or nid (service.find resolves it).
EdgeRef = Annotated[str, Path(description="edge id, name or nid", examples=["1"])]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EdgeCreated)
async def register_edge(
    data: EdgeCreate, session: SessionDep, settings: SettingsDep, _: OperatorAuth
):
    """Register an edge (the field's payload plus ``nid``); the answer carries its token, shown
    once."""
    edge, token = await service.create(session, data, settings)
    return EdgeCreated(**service.to_out(edge).model_dump(), token=token)


@router.get("", response_model=Page[EdgeOut])
async def list_edges(
    session: SessionDep,
    _: ReaderAuth,
    page: PageDep,
    cluster_id: int | None = None,
    name: Annotated[str | None, Query(description="substring of the name")] = None,
    nid: str | None = None,
    status: EdgeStatus | None = None,
    supports_analysis: bool | None = None,
):
    items, total = await service.list_page(
        session,
        page,
        cluster_id=cluster_id,
        name=name,
        nid=nid,
        status=status,
        supports_analysis=supports_analysis,
    )
    return Page(
        items=[service.to_out(e) for e in items], total=total, limit=page.limit, offset=page.offset
    )


@router.get("/node-ids", response_model=NodeIds, summary="Every registered node id (for the VMS)")
async def node_ids(session: SessionDep, _: ServiceAuth) -> NodeIds:
    return await service.node_ids(session)


@router.get(
    "/token-revocations",
    response_model=TokenRevocations,
    summary="Per node, the lowest edge-token id still valid (the services' safety-net read)",
)
async def token_revocations(session: SessionDep, _: ServiceAuth) -> TokenRevocations:
    entries = await tokens.revocations(session)
    return TokenRevocations(min_token_id=entries)


@router.post(
    "/me/token", response_model=EdgeToken, summary="Renew the calling edge's token (its agent)"
)
async def renew_token(
    settings: SettingsDep, keys: KeyRingDep, session: SessionDep, who: EdgeAuth
) -> EdgeToken:
    assert who.nid is not None
    edge, token = await service.renew_token(session, who.nid, settings)
    return _token_out(edge.id, edge.nid, token, keys)


def _token_out(edge_id: int, nid: str, token: str, keys: KeyRing) -> EdgeToken:
    claims = decode_edge_token(token, keys)
    expires_at = claims.expires_at if claims else None
    return EdgeToken(id=edge_id, nid=nid, token=token, expires_at=expires_at)


@router.get("/{edge}", response_model=EdgeOut)
async def get_edge(edge: EdgeRef, session: SessionDep, _: ReaderAuth):
    return service.to_out(await service.find(session, edge))


@router.patch("/{edge}", response_model=EdgeOut)
async def update_edge(
    edge: EdgeRef, data: EdgeUpdate, session: SessionDep, settings: SettingsDep, _: OperatorAuth
):
    return service.to_out(await service.update(session, edge, data, settings))


@router.post(
    "/{edge}/token",
    response_model=EdgeToken,
    summary="Issue a new token for the edge (shown once)",
)
async def rotate_token(
    settings: SettingsDep, keys: KeyRingDep, edge: EdgeRef, session: SessionDep, _: OperatorAuth
):
    found, token = await service.rotate_token(session, edge, settings)
    return _token_out(found.id, found.nid, token, keys)


@router.post(
    "/{edge}/workload-token",
    response_model=EdgeToken,
    summary="A token for the workloads the master runs on the edge (the master only)",
)
async def workload_token(
    edge: EdgeRef,
    session: SessionDep,
    _: ServiceAuth,
    settings: SettingsDep,
    keys: KeyRingDep,
) -> EdgeToken:
    found, token = await service.workload_token(session, edge, settings)
    return _token_out(found.id, found.nid, token, keys)


@router.post(
    "/{edge}/credential",
    response_model=EdgeToken,
    summary="A long-lived token for a field device without an agent (shown once)",
    description="For a device that cannot renew its token (no agent): an edge token of the "
    "given lifetime. Older tokens stay valid. Revoke with `DELETE /edges/{edge}/tokens` "
    "(every token of the edge), a rotation (`POST /edges/{edge}/token`) or the edge's removal.",
)
async def device_credential(
    edge: EdgeRef,
    data: CredentialIn,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeyRingDep,
    _: OperatorAuth,
) -> EdgeToken:
    found, token = await service.device_credential(session, edge, data.days, settings)
    return _token_out(found.id, found.nid, token, keys)


@router.delete(
    "/{edge}/tokens",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke every token of the edge (its agent's and its devices' credentials)",
)
async def revoke_tokens(edge: EdgeRef, session: SessionDep, _: OperatorAuth) -> None:
    await service.revoke_tokens(session, edge)


@router.get(
    "/{edge}/camera",
    response_model=EdgeCamera,
    summary="Camera URL with credentials (the master only)",
)
async def camera(edge: EdgeRef, session: SessionDep, settings: SettingsDep, _: ServiceAuth):
    found = await service.find(session, edge)
    url = await service.camera_url(session, found.id, settings)
    return EdgeCamera(id=found.id, url=url)


@router.delete("/{edge}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_edge(edge: EdgeRef, session: SessionDep, _: OperatorAuth) -> None:
    await service.delete(session, edge)
