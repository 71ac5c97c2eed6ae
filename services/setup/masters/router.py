from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.setup.masters import service
from services.setup.masters.schemas import MasterCreate, MasterOut, MasterUpdate
from shared.auth import OperatorAuth, ReaderAuth
from shared.db import SessionDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/masters", tags=["masters"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MasterOut)
async def create_master(data: MasterCreate, session: SessionDep, _: OperatorAuth):
    return await service.create(session, data)


@router.get("", response_model=Page[MasterOut])
async def list_masters(
    session: SessionDep,
    _: ReaderAuth,
    page: PageDep,
    name: Annotated[str | None, Query(description="substring of the name")] = None,
    cluster_id: int | None = None,
):
    items, total = await service.list_page(session, page, name=name, cluster_id=cluster_id)
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{master_id}", response_model=MasterOut)
async def get_master(master_id: int, session: SessionDep, _: ReaderAuth):
    return await service.get(session, master_id)


@router.patch("/{master_id}", response_model=MasterOut)
async def update_master(master_id: int, data: MasterUpdate, session: SessionDep, _: OperatorAuth):
    return await service.update(session, master_id, data)


@router.delete("/{master_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_master(master_id: int, session: SessionDep, _: OperatorAuth) -> None:
    await service.delete(session, master_id)
