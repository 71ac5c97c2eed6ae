"""The two baselines the VMS is measured against, on the same server settings (uvicorn, workers).

- ``POST /noop``: read and parse the JSON body, answer the field's envelope. The ceiling.
- ``POST /naive``: parse, validate, verify the edge token, then one INSERT and one COMMIT per
  request through a SQLAlchemy session, the conventional way (and the way the field's VMS stored
  records). The baseline.
- ``POST /naive-raw``: the same with the leanest per-record commit there is (asyncpg, autocommit
  INSERT, no ORM): how far one commit per record goes at best.

Run by bench/ingest/run.py as ``uvicorn bench.ingest.baseline_app:create_app --factory``.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.vms.ingest.schemas import UsageIn
from services.vms.models import usage as usage_table
from shared.db import create_engine, make_sessionmaker
from shared.edge_tokens import verify_edge_token

SUCCESS = b'{"code":"0000","message":"success"}'


def create_app() -> FastAPI:
    dsn = os.environ["EDGE_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    secret = os.environ["EDGE_EDGE_TOKEN_SECRET"]
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        size = int(os.environ.get("BENCH_POOL", "16"))
        state["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=size)
        engine = create_engine(
            os.environ["EDGE_DATABASE_URL"], pool_size=size, application_name="bench-naive"
        )
        state["sessions"] = make_sessionmaker(engine)
        yield
        await state["pool"].close()
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/noop")
    async def noop(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(SUCCESS, media_type="application/json")

    def parse(request: Request, body: bytes):
        payload = UsageIn.model_validate(orjson.loads(body))
        token = request.headers.get("authorization", "").partition(" ")[2]
        return payload, verify_edge_token(token, secret) or payload.nid or payload.username

    @app.post("/naive")
    async def naive(request: Request) -> Response:
        payload, nid = parse(request, await request.body())
        now = datetime.now(UTC)
        async with state["sessions"]() as session:
            await session.execute(
                usage_table.insert().values(
                    nid=nid,
                    ts=now,
                    received_at=now,
                    cpu=payload.cpu,
                    memory=payload.memory,
                    func=payload.func,
                    username=payload.username,
                    code=payload.code,
                    message=payload.message,
                    authenticated=True,
                    known=True,
                )
            )
            await session.commit()
        return Response(SUCCESS, media_type="application/json")

    @app.post("/naive-raw")
    async def naive_raw(request: Request) -> Response:
        payload, nid = parse(request, await request.body())
        now = datetime.now(UTC)
        async with state["pool"].acquire() as conn:  # autocommit: one transaction per record
            await conn.execute(
                "INSERT INTO vms.usage (nid, ts, received_at, cpu, memory, func, username, code,"
                " message, authenticated, known)"
                " VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, true, true)",
                nid,
                now,
                payload.cpu,
                payload.memory,
                payload.func,
                payload.username,
                payload.code,
                payload.message,
            )
        return Response(SUCCESS, media_type="application/json")

    return app
