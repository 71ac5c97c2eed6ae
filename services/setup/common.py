"""Small helpers the setup domains share."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import NotFound

M = TypeVar("M")


async def get_or_404(
    session: AsyncSession, model: type[M], ident: int, *, what: str, field: str = "id"
) -> M:
    row = await session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident} does not exist", field=field)
    return row


def apply_changes(row: Any, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        setattr(row, key, value)
