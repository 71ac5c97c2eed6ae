from __future__ import annotations

from fastapi import APIRouter, status

from services.setup.ai_packages import service
from services.setup.ai_packages.schemas import AiPackageCreate, AiPackageOut, AiPackageUpdate
from services.setup.master_client import MasterDep
from shared.auth import OperatorAuth, ReaderAuth
from shared.contracts.fleet import PackageStatus
from shared.db import SessionDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/ai-packages", tags=["ai packages"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AiPackageOut)
async def create_ai_package(
    data: AiPackageCreate,
    session: SessionDep,
    who: OperatorAuth,
    master: MasterDep,
):
    """Record an AI package; the default master is asked to build it (or upload the archive to
    a master). A master recording the package uploaded to it builds it itself: no request."""
    uploaded_to_a_master = who.kind == "service" and who.name == "master"
    return await service.create(session, data, master, request_build=not uploaded_to_a_master)


@router.get("", response_model=Page[AiPackageOut])
async def list_ai_packages(
    session: SessionDep,
    _: ReaderAuth,
    page: PageDep,
    filename: str | None = None,
    ai_class: str | None = None,
    status: PackageStatus | None = None,
    condition: str | None = None,
):
    items, total = await service.list_page(
        session, page, filename=filename, ai_class=ai_class, status=status, condition=condition
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{ai_id}", response_model=AiPackageOut)
async def get_ai_package(ai_id: int, session: SessionDep, _: ReaderAuth):
    return await service.get(session, ai_id)


@router.patch("/{ai_id}", response_model=AiPackageOut)
async def update_ai_package(
    ai_id: int, data: AiPackageUpdate, session: SessionDep, master: MasterDep, _: OperatorAuth
):
    return await service.update(session, ai_id, data, master)


@router.delete("/{ai_id}", response_model=AiPackageOut)
async def remove_ai_package(ai_id: int, session: SessionDep, master: MasterDep, _: OperatorAuth):
    """Mark the AI removed; the master deletes its image and, once unreferenced, its artifact."""
    return await service.remove(session, ai_id, master)
