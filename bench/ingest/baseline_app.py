"""The two baselines the VMS is measured against, on the same server settings (uvicorn, workers).

- ``POST /noop``: read and parse the JSON body, answer the field's envelope. The ceiling.
- ``POST /naive``: parse, validate, verify the edge token, one INSERT and one COMMIT per request,
  the way the field's VMS stored records. The baseline.

Run by bench/ingest/run.py as ``uvicorn bench.ingest.baseline_app:create_app --factory``.
"""
from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.vms.ingest.schemas import UsageIn
from shared.edge_tokens import verify_edge_token

SUCCESS = b'{"code":"0000","message":"success"}'


def create_app() -> FastAPI:
    dsn = os.environ["EDGE_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    secret = os.environ["EDGE_EDGE_TOKEN_SECRET"]
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        state["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=int(os.environ.get("BENCH_POOL", "16")))
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/noop")
    async def noop(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(SUCCESS, media_type="application/json")

    @app.post("/naive")
    async def naive(request: Request) -> Response:
        payload = UsageIn.model_validate(orjson.loads(await request.body()))
        token = request.headers.get("authorization", "").partition(" ")[2]
        nid = verify_edge_token(token, secret) or payload.nid or payload.username
        now = datetime.now(timezone.utc)
        async with state["pool"].acquire() as conn:  # autocommit: one transaction per record
            await conn.execute(
                "INSERT INTO vms.usage (nid, ts, received_at, cpu, memory, func, username, code, message, authenticated, known)"
                " VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, true, true)",
                nid, now, payload.cpu, payload.memory, payload.func, payload.username, payload.code, payload.message,
            )
        return Response(SUCCESS, media_type="application/json")

    return app
