from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.setup.clusters import service
from services.setup.clusters.schemas import ClusterCreate, ClusterUpdate, Runtime
from services.setup.settings import SettingsDep, SetupSettings
from shared.auth import OperatorAuth, ReaderAuth
from shared.contracts.registry import ClusterOut
from shared.db import SessionDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/clusters", tags=["clusters"])


def _silent_after(settings: SettingsDep) -> float:
    return float(settings.master_silent_after_s)


async def _one(session, settings: SetupSettings, cluster) -> ClusterOut:
    return (await service.describe(session, [cluster], _silent_after(settings)))[0]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClusterOut)
async def create_cluster(
    data: ClusterCreate, session: SessionDep, settings: SettingsDep, _: OperatorAuth
):
    return await _one(session, settings, await service.create(session, data))


@router.get("", response_model=Page[ClusterOut])
async def list_clusters(
    session: SessionDep,
    settings: SettingsDep,
    _: ReaderAuth,
    page: PageDep,
    name: Annotated[str | None, Query(description="substring of the name")] = None,
    runtime: Runtime | None = None,
):
    items, total = await service.list_page(session, page, name=name, runtime=runtime)
    described = await service.describe(session, list(items), _silent_after(settings))
    return Page(items=described, total=total, limit=page.limit, offset=page.offset)


@router.get("/{cluster_id}", response_model=ClusterOut)
async def get_cluster(cluster_id: int, session: SessionDep, settings: SettingsDep, _: ReaderAuth):
    return await _one(session, settings, await service.get(session, cluster_id))


@router.patch("/{cluster_id}", response_model=ClusterOut)
async def update_cluster(
    cluster_id: int,
    data: ClusterUpdate,
    session: SessionDep,
    settings: SettingsDep,
    _: OperatorAuth,
):
    return await _one(session, settings, await service.update(session, cluster_id, data))


@router.delete("/{cluster_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_cluster(cluster_id: int, session: SessionDep, _: OperatorAuth) -> None:
    await service.delete(session, cluster_id)
