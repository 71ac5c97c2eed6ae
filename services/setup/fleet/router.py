from __future__ import annotations

from fastapi import APIRouter
import orjson
from fastapi.responses import Response

from services.setup.conditions import service as conditions
from services.setup.fleet import repository
from shared.auth import ReaderAuth
from shared.db import SessionDep

router = APIRouter(prefix="/fleet", tags=["fleet"])


@router.get("/snapshot", summary="Edges, AI packages, live deployments and the condition mapping in one answer")
async def snapshot(session: SessionDep, _: ReaderAuth) -> Response:
    body = await repository.snapshot(session)
    body["conditions"] = (await conditions.read(session)).model_dump()
    return Response(orjson.dumps(body), media_type="application/json")
