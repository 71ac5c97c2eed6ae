from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.conditions.schemas import ConditionMapping
from services.setup.models import ConditionAiClass, ConditionCode
from shared.db import flush


async def read(session: AsyncSession) -> ConditionMapping:
    codes = (
        await session.execute(
            select(ConditionCode.code, ConditionCode.condition).order_by(ConditionCode.code)
        )
    ).all()
    classes = (
        await session.execute(select(ConditionAiClass.condition, ConditionAiClass.ai_class))
    ).all()
    return ConditionMapping(codes={c: k for c, k in codes}, ai_classes={c: a for c, a in classes})


async def replace(session: AsyncSession, mapping: ConditionMapping) -> ConditionMapping:
    await session.execute(delete(ConditionCode))
    await session.execute(delete(ConditionAiClass))
    session.add_all(
        ConditionCode(code=code, condition=cond) for code, cond in mapping.codes.items()
    )
    session.add_all(
        ConditionAiClass(condition=cond, ai_class=cls) for cond, cls in mapping.ai_classes.items()
    )
    await flush(session)
    return mapping
