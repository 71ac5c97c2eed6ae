"""A 200 means committed: drop the VMS's database connections while posts are in flight."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg

from tests.helpers.env import OPERATOR
from tests.vms.conftest import fetch, vms


async def _terminate_vms_connections(database_url: str, stop: asyncio.Event) -> int:
    """Kill the VMS's backends on this test's database only (others share the server) until told to stop."""
    dbname = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    killed = 0
    try:
        while not stop.is_set():
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name LIKE 'edge-vms%' AND pid <> pg_backend_pid()",
                dbname,
            )
            killed += sum(1 for r in rows if r["ok"])
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.05)
            except asyncio.TimeoutError:
                pass
    finally:
        await admin.close()
    return killed


async def test_every_acknowledged_post_is_in_the_table_across_connection_drops(db):
    run = uuid.uuid4().hex[:8]
    acknowledged: list[str] = []
    statuses: dict[int, int] = {}

    async with vms(db, unknown_nodes="flag", group_commit_window_ms=2.0) as client:

        async def poster(worker: int) -> None:
            for i in range(60):
                marker = f"{run}-{worker}-{i}"
                body = {"nid": f"0x{worker:02x}", "cpu": i % 100, "memory": 50, "func": "SUNNY", "message": marker}
                try:
                    r = await client.post("/usage", json=body, headers=OPERATOR)
                except Exception:  # a transport error is an unacknowledged post, like a 503
                    statuses[-1] = statuses.get(-1, 0) + 1
                    continue
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    acknowledged.append(marker)
                else:
                    assert r.status_code == 503 and r.headers.get("retry-after"), r.text

        stop = asyncio.Event()
        killer = asyncio.create_task(_terminate_vms_connections(db, stop))
        await asyncio.gather(*(poster(w) for w in range(16)))
        stop.set()
        killed = await killer

        # The pool heals: a post after the storm is stored.
        r = await client.post("/usage", json={"nid": "0x01", "cpu": 1, "memory": 1, "func": "SUNNY", "message": f"{run}-after"}, headers=OPERATOR)
        assert r.status_code == 200
        acknowledged.append(f"{run}-after")

    assert killed > 0, "the test must actually drop connections"
    assert statuses.get(200, 0) > 0
    stored = {r["message"] for r in await fetch(db, "SELECT message FROM vms.usage WHERE message LIKE $1", f"{run}-%")}
    missing = [m for m in acknowledged if m not in stored]
    print(f"statuses {statuses}, connections killed {killed}")
    assert not missing, f"{len(missing)} acknowledged records lost (statuses {statuses}, killed {killed})"
