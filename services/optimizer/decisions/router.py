from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.optimizer.decisions import service
from services.optimizer.engine.runner import RunnerDep
from shared.auth import ReaderAuth
from shared.contracts.decisions import Action, DecisionPage, EdgeExplained, Outcome, Policy
from shared.db import SessionDep

router = APIRouter(tags=["decisions"])


@router.get("/decisions", response_model=DecisionPage, summary="The decision log, newest first")
async def list_decisions(
    runner: RunnerDep,
    session: SessionDep,
    _: ReaderAuth,
    edge: Annotated[str | None, Query(description="edge id, name or nid")] = None,
    policy: Policy | None = None,
    action: Action | None = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> DecisionPage:
    return await service.list_decisions(
        session,
        runner,
        edge=edge,
        policy=policy,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/edges/{edge}/explain",
    response_model=EdgeExplained,
    summary="An edge's current desired state and the decisions that produced it",
)
async def explain(
    edge: str, runner: RunnerDep, session: SessionDep, _: ReaderAuth
) -> EdgeExplained:
    return await service.explain(session, runner, edge)
