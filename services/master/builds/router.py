"""AI packages as the master sees them: setup's rows, the master's build record, build and remove."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from services.master.builds import removal, repository
from services.master.context import ContextDep
from shared.auth import OperatorAuth, ReaderAuth

router = APIRouter(prefix="/ai-packages", tags=["ai packages"])


@router.get("", summary="AI packages (setup's list)")
async def list_ai_packages(request: Request, ctx: ContextDep, _: ReaderAuth) -> dict[str, Any]:
    return await ctx.setup.list_ais(dict(request.query_params))


@router.get("/{ai_id}", summary="One AI package, with the master's last build")
async def get_ai_package(ai_id: int, ctx: ContextDep, _: ReaderAuth) -> dict[str, Any]:
    ai = await ctx.setup.get_ai(ai_id)
    async with ctx.sessionmaker() as session:
        job = await repository.get_job(session, ai_id)
    ai["build"] = None if job is None else {
        "state": "running" if ai_id in ctx.builds.in_flight() else job.state,
        "attempts": job.attempts,
        "reason": job.reason,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
    return ai


@router.delete("/{ai_id}", summary="Remove an AI: marked removed in setup, image and unused artifact deleted")
async def delete_ai_package(ai_id: int, ctx: ContextDep, _: OperatorAuth) -> dict[str, Any]:
    await ctx.setup.delete_ai(ai_id)  # 409 while deployed somewhere
    return await removal.remove_ai(ctx, ai_id)


@router.post("/{ai_id}/build", summary="Build and push the package recorded in setup (setup calls this)")
async def build_ai_package(
    ai_id: int,
    ctx: ContextDep,
    _: OperatorAuth,
    wait: bool = Query(False, description="answer once the build has ended, with setup's row"),
) -> JSONResponse:
    started = ctx.builds.kick(ai_id)
    if wait:
        await ctx.builds.wait(ai_id)
        return JSONResponse({"id": ai_id, "ai": await ctx.setup.get_ai(ai_id)})
    return JSONResponse({"id": ai_id, "build": "queued" if started else "running"}, status_code=status.HTTP_202_ACCEPTED)


@router.post("/{ai_id}/remove", summary="Delete the image and (unreferenced) artifact of an AI removed in setup")
async def remove_ai_package(ai_id: int, ctx: ContextDep, _: OperatorAuth) -> dict[str, Any]:
    return await removal.remove_ai(ctx, ai_id)
