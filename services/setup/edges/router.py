from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from services.setup.edges import service, tokens
from services.setup.edges.schemas import (
    CredentialIn,
    EdgeCamera,
    EdgeCreate,
    EdgeCreated,
    EdgeOut,
    EdgeToken,
    EdgeUpdate,
    TokenRevocations,
)
from shared.auth import EdgeAuth, OperatorAuth, ReaderAuth, ServiceAuth
from shared.contracts.fleet import EdgeStatus
from shared.db import SessionDep
from shared.edge_tokens import decode_edge_token
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/edges", tags=["edges"])

# Every /edges/{edge} route takes the edge's id, name or nid (service.find resolves it).
EdgeRef = Annotated[str, Path(description="edge id, name or nid", examples=["1"])]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EdgeCreated)
async def register_edge(data: EdgeCreate, session: SessionDep, request: Request, _: OperatorAuth):
    """Register an edge (the field's payload plus ``nid``); the answer carries its token, shown
    once."""
    edge, token = await service.create(session, data, request.app.state.settings)
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


@router.get("/node-ids", summary="Every registered node id (for the VMS)")
async def node_ids(session: SessionDep, _: ServiceAuth) -> dict:
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
async def renew_token(session: SessionDep, request: Request, who: EdgeAuth) -> EdgeToken:
    assert who.nid is not None
    edge, token = await service.renew_token(session, who.nid, request.app.state.settings)
    return _token_out(edge.id, edge.nid, token, request)


def _token_out(edge_id: int, nid: str, token: str, request: Request) -> EdgeToken:
    secret = request.app.state.settings.edge_token_secret.get_secret_value()
    claims = decode_edge_token(token, secret)
    expires_at = claims.expires_at if claims else None
    return EdgeToken(id=edge_id, nid=nid, token=token, expires_at=expires_at)


@router.get("/{edge}", response_model=EdgeOut)
async def get_edge(edge: EdgeRef, session: SessionDep, _: ReaderAuth):
    return service.to_out(await service.find(session, edge))


@router.patch("/{edge}", response_model=EdgeOut)
async def update_edge(
    edge: EdgeRef, data: EdgeUpdate, session: SessionDep, request: Request, _: OperatorAuth
):
    settings = request.app.state.settings
    return service.to_out(await service.update(session, edge, data, settings))


@router.post(
    "/{edge}/token",
    response_model=EdgeToken,
    summary="Issue a new token for the edge (shown once)",
)
async def rotate_token(edge: EdgeRef, session: SessionDep, request: Request, _: OperatorAuth):
    found, token = await service.rotate_token(session, edge, request.app.state.settings)
    return _token_out(found.id, found.nid, token, request)


@router.post(
    "/{edge}/workload-token",
    response_model=EdgeToken,
    summary="A token for the workloads the master runs on the edge (the master only)",
)
async def workload_token(
    edge: EdgeRef, session: SessionDep, request: Request, _: ServiceAuth
) -> EdgeToken:
    found, token = await service.workload_token(session, edge, request.app.state.settings)
    return _token_out(found.id, found.nid, token, request)


@router.post(
    "/{edge}/credential",
    response_model=EdgeToken,
    summary="A long-lived token for a field device without an agent (shown once)",
    description="For a device that cannot renew its token (no agent): an edge token of the "
    "given lifetime. Older tokens stay valid. Revoke with `DELETE /edges/{edge}/tokens` "
    "(every token of the edge), a rotation (`POST /edges/{edge}/token`) or the edge's removal.",
)
async def device_credential(
    edge: EdgeRef, data: CredentialIn, session: SessionDep, request: Request, _: OperatorAuth
) -> EdgeToken:
    settings = request.app.state.settings
    found, token = await service.device_credential(session, edge, data.days, settings)
    return _token_out(found.id, found.nid, token, request)


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
async def camera(edge: EdgeRef, session: SessionDep, request: Request, _: ServiceAuth):
    found = await service.find(session, edge)
    url = await service.camera_url(session, found.id, request.app.state.settings)
    return EdgeCamera(id=found.id, url=url)


@router.delete("/{edge}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_edge(edge: EdgeRef, session: SessionDep, _: OperatorAuth) -> None:
    await service.delete(session, edge)
