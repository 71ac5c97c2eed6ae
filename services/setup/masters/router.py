from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.setup.masters import service
from services.setup.masters.schemas import (
    MasterCreate,
    MasterHeartbeat,
    MasterOut,
    MasterRegister,
    MasterUpdate,
)
from services.setup.models import Master
from services.setup.settings import SettingsDep, SetupSettings
from shared.auth import OperatorAuth, ReaderAuth
from shared.db import SessionDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/masters", tags=["masters"])


def _silent_after(settings: SettingsDep) -> float:
    return float(settings.master_silent_after_s)


async def _one(session, settings: SetupSettings, master: Master) -> MasterOut:
    return (await service.describe(session, [master], _silent_after(settings)))[0]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MasterOut)
async def create_master(
    data: MasterCreate, session: SessionDep, settings: SettingsDep, _: OperatorAuth
):
    return await _one(session, settings, await service.create(session, data))


@router.post(
    "/register",
    response_model=MasterOut,
    summary="A master registers itself with the clusters it serves (the master calls this)",
    description="Creates or refreshes the master named `name`. A cluster another live master "
    "serves is refused (409 naming `clusters`); an unknown cluster is a 422; nothing is written "
    "then. A cluster whose master is silent (`SETUP_MASTER_SILENT_AFTER_S`) is taken over.",
)
async def register_master(
    data: MasterRegister, session: SessionDep, settings: SettingsDep, _: OperatorAuth
):
    master = await service.register(session, data, _silent_after(settings))
    return await _one(session, settings, master)


@router.get("", response_model=Page[MasterOut])
async def list_masters(
    session: SessionDep,
    settings: SettingsDep,
    _: ReaderAuth,
    page: PageDep,
    name: Annotated[str | None, Query(description="substring of the name")] = None,
    cluster_id: int | None = None,
):
    items, total = await service.list_page(session, page, name=name, cluster_id=cluster_id)
    described = await service.describe(session, list(items), _silent_after(settings))
    return Page(items=described, total=total, limit=page.limit, offset=page.offset)


@router.get("/{master_id}", response_model=MasterOut)
async def get_master(master_id: int, session: SessionDep, settings: SettingsDep, _: ReaderAuth):
    return await _one(session, settings, await service.get(session, master_id))


@router.post(
    "/{master_id}/heartbeat",
    response_model=MasterOut,
    summary="A registered master is alive, with its health (the master calls this)",
)
async def heartbeat_master(
    master_id: int,
    data: MasterHeartbeat,
    session: SessionDep,
    settings: SettingsDep,
    _: OperatorAuth,
):
    master = await service.heartbeat(session, master_id, data)
    return await _one(session, settings, master)


@router.patch("/{master_id}", response_model=MasterOut)
async def update_master(
    master_id: int, data: MasterUpdate, session: SessionDep, settings: SettingsDep, _: OperatorAuth
):
    return await _one(session, settings, await service.update(session, master_id, data))


@router.delete("/{master_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_master(master_id: int, session: SessionDep, _: OperatorAuth) -> None:
    await service.delete(session, master_id)
