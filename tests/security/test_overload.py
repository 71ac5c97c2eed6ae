"""Overload is a 503 with Retry-After, never a 500, and readiness answers fast meanwhile
(issue 25 item 3): a lock holds the VMS's reads up until its small connection pool is
exhausted, 300 requests arrive at once, and /readyz is asked while they wait."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.helpers.database import asyncpg_url
from tests.helpers.env import OPERATOR
from tests.vms.conftest import vms

REQUESTS = 300


async def test_an_exhausted_pool_answers_503_with_retry_after_and_readiness_stays_fast(
    db: str,
) -> None:
    async with vms(db, db_pool_size=2, db_pool_timeout_s=1.0) as client:
        assert (await client.get("/nodes/state", headers=OPERATOR)).status_code == 200
        locker = await asyncpg.connect(asyncpg_url(db))
        try:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("LOCK TABLE vms.node_state IN ACCESS EXCLUSIVE MODE")
            flood = [
                asyncio.create_task(client.get("/nodes/state", headers=OPERATOR))
                for _ in range(REQUESTS)
            ]
            await asyncio.sleep(0.3)  # every pooled connection now waits on the lock
            readiness: list[tuple[int, float]] = []
            for _ in range(4):
                started = time.monotonic()
                ready = await client.get("/readyz")
                readiness.append((ready.status_code, time.monotonic() - started))
                await asyncio.sleep(0.4)
            await asyncio.sleep(1.0)  # the queued requests' pool timeout (1 s) has passed
            await transaction.rollback()
            answers: list[httpx.Response] = await asyncio.gather(*flood)
        finally:
            await locker.close()
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        refused = [a for a in answers if a.status_code == 503]
        assert refused, "the pool of 4 connections served 300 held-up requests"
        assert all(a.headers.get("retry-after") for a in refused)
        assert refused[0].json()["error"]["type"] == "unavailable"
        assert 200 in statuses  # those that held a connection were answered once the lock went
        assert all(status == 200 and took < 1.0 for status, took in readiness), readiness
        # Recovered by itself: the next request is served.
        assert (await client.get("/nodes/state", headers=OPERATOR)).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
