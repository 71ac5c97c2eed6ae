from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.setup.clusters import service
from services.setup.clusters.schemas import ClusterCreate, ClusterOut, ClusterUpdate, Runtime
from shared.auth import OperatorAuth, ReaderAuth
from shared.db import SessionDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/clusters", tags=["clusters"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClusterOut)
async def create_cluster(data: ClusterCreate, session: SessionDep, _: OperatorAuth):
    return await service.create(session, data)


@router.get("", response_model=Page[ClusterOut])
async def list_clusters(
    session: SessionDep,
    _: ReaderAuth,
    page: PageDep,
    name: Annotated[str | None, Query(description="substring of the name")] = None,
    runtime: Runtime | None = None,
):
    items, total = await service.list_page(session, page, name=name, runtime=runtime)
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{cluster_id}", response_model=ClusterOut)
async def get_cluster(cluster_id: int, session: SessionDep, _: ReaderAuth):
    return await service.get(session, cluster_id)


@router.patch("/{cluster_id}", response_model=ClusterOut)
async def update_cluster(
    cluster_id: int, data: ClusterUpdate, session: SessionDep, _: OperatorAuth
):
    return await service.update(session, cluster_id, data)


@router.delete("/{cluster_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_cluster(cluster_id: int, session: SessionDep, _: OperatorAuth) -> None:
    await service.delete(session, cluster_id)
