from __future__ import annotations

from fastapi import APIRouter, status

from services.optimizer.engine.runner import RunnerDep
from services.optimizer.events import service
from services.optimizer.events.schemas import Event, EventAccepted
from shared.auth import OperatorAuth
from shared.db import SessionDep

router = APIRouter(tags=["events"])


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    summary="Something changed (VMS, master, setup): decided within a second",
)
async def post_event(
    event: Event, session: SessionDep, runner: RunnerDep, _: OperatorAuth
) -> EventAccepted:
    return await service.accept(session, runner, event)
