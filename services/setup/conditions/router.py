from __future__ import annotations

from fastapi import APIRouter

from services.setup.conditions import service
from services.setup.conditions.schemas import ConditionMapping
from shared.auth import OperatorAuth, ReaderAuth
from shared.db import SessionDep

router = APIRouter(prefix="/conditions", tags=["conditions"])


@router.get("", response_model=ConditionMapping, summary="Result code -> condition -> ai_class")
async def get_conditions(session: SessionDep, _: ReaderAuth):
    return await service.read(session)


@router.put("", response_model=ConditionMapping, summary="Replace the whole mapping")
async def put_conditions(mapping: ConditionMapping, session: SessionDep, _: OperatorAuth):
    return await service.replace(session, mapping)
