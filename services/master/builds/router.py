"""AI packages as the master sees them: setup's rows, the master's build record, build and
remove."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse

from services.master.builds import repository
from services.master.builds.removal import RemovalsDep
from services.master.builds.service import BuildRunnerDep
from services.master.context import ContextDep
from services.master.models import BuildState
from shared.auth import OperatorAuth, ReaderAuth
from shared.contracts.master import AiRemoval, BuildEnded, BuildStarted
from shared.db import SessionDep
from shared.errors import Conflict

router = APIRouter(prefix="/ai-packages", tags=["ai packages"])


@router.get("", summary="AI packages (setup's list)")
async def list_ai_packages(request: Request, ctx: ContextDep, _: ReaderAuth) -> Any:
    return await ctx.setup.list_ais_raw(dict(request.query_params))


@router.get("/{ai_id}", summary="One AI package, with the master's last build")
async def get_ai_package(
    _: ReaderAuth, ai_id: int, ctx: ContextDep, builds: BuildRunnerDep, session: SessionDep
) -> dict[str, Any]:
    ai = (await ctx.setup.get_ai(ai_id)).model_dump(mode="json")
    job = await repository.get_job(session, ai_id)
    in_flight = ai_id in builds.in_flight()
    ai["build"] = (
        None
        if job is None
        else {
            "state": BuildState.RUNNING if in_flight else job.state,
            "attempts": job.attempts,
            "reason": job.reason,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
        }
    )
    return ai


@router.delete(
    "/{ai_id}", summary="Remove an AI: marked removed in setup, image and unused artifact deleted"
)
async def delete_ai_package(
    ai_id: int, ctx: ContextDep, removals: RemovalsDep, _: OperatorAuth
) -> AiRemoval:
    # 409 while deployed somewhere; setup's own call to .../remove joins this clean-up.
    return await removals.remove(ai_id, first=lambda: ctx.setup.delete_ai(ai_id))


@router.post(
    "/{ai_id}/build",
    summary="Build and push the package recorded in setup (setup calls this)",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BuildStarted,
    responses={200: {"model": BuildEnded, "description": "with ?wait=true: the build ended"}},
)
async def build_ai_package(
    ai_id: int,
    ctx: ContextDep,
    builds: BuildRunnerDep,
    _: OperatorAuth,
    wait: Annotated[
        bool, Query(description="answer once the build has ended, with setup's row")
    ] = False,
) -> JSONResponse:
    started = builds.kick(ai_id)
    if wait:
        await builds.wait(ai_id)
        ended = BuildEnded(id=ai_id, ai=await ctx.setup.get_ai(ai_id))
        return JSONResponse(ended.model_dump(mode="json"))
    build = BuildStarted(id=ai_id, build=BuildState.QUEUED if started else BuildState.RUNNING)
    return JSONResponse(build.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/{ai_id}/remove",
    summary="Delete the image and (unreferenced) artifact of an AI removed in setup",
)
async def remove_ai_package(ai_id: int, removals: RemovalsDep, _: OperatorAuth) -> AiRemoval:
    return await removals.remove(ai_id)


builds_router = APIRouter(prefix="/builds", tags=["ai packages"])


@builds_router.get(
    "/{ai_id}/log",
    summary="The log of the last build of an AI (the builder's output), as plain text",
    response_class=PlainTextResponse,
)
async def build_log(ai_id: int, builds: BuildRunnerDep, _: ReaderAuth) -> PlainTextResponse:
    text = await asyncio.to_thread(builds.logs.read, ai_id)
    return PlainTextResponse(text)


@builds_router.post(
    "/{ai_id}/cancel",
    summary="Stop the running build of an AI (the AI is failed: 'the build was cancelled')",
)
async def cancel_build(ai_id: int, builds: BuildRunnerDep, _: OperatorAuth) -> dict[str, Any]:
    if not await builds.cancel(ai_id):
        raise Conflict(f"no build of AI {ai_id} is running", field="id")
    return {"id": ai_id, "build": BuildState.FAILED, "reason": "the build was cancelled"}
