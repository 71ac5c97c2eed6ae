"""A 200 means committed: drop the VMS's database connections while posts are in flight; restart
Postgres and SIGKILL the VMS while edges post and one client loops poison records."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import httpx

from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import start_service
from tests.vms.conftest import edge_headers, fetch, vms
from tests.vms.private_postgres import PrivatePostgres


async def _terminate_vms_connections(database_url: str, stop: asyncio.Event) -> int:
    """Kill the VMS's backends on this test's database only (others share the server) until told to
    stop."""
    dbname = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    killed = 0
    try:
        while not stop.is_set():
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name LIKE "
                "'edge-vms%' AND pid <> pg_backend_pid()",
                dbname,
            )
            killed += sum(1 for r in rows if r["ok"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.05)
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
                body = {
                    "nid": f"0x{worker:02x}",
                    "cpu": i % 100,
                    "memory": 50,
                    "func": "SUNNY",
                    "message": marker,
                }
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
        r = await client.post(
            "/usage",
            json={"nid": "0x01", "cpu": 1, "memory": 1, "func": "SUNNY", "message": f"{run}-after"},
            headers=OPERATOR,
        )
        assert r.status_code == 200
        acknowledged.append(f"{run}-after")

    assert killed > 0, "the test must actually drop connections"
    assert statuses.get(200, 0) > 0
    stored = {
        r["message"]
        for r in await fetch(db, "SELECT message FROM vms.usage WHERE message LIKE $1", f"{run}-%")
    }
    missing = [m for m in acknowledged if m not in stored]
    print(f"statuses {statuses}, connections killed {killed}")
    assert not missing, (
        f"{len(missing)} acknowledged records lost (statuses {statuses}, killed {killed})"
    )


POISON_BODIES = [
    ("/usage", {"nid": "0x66", "cpu": 1, "memory": 1, "func": "SUN\u0000NY"}),
    (
        "/detections",
        {
            "nid": "0x66",
            "ts": "2026-01-01T00:00:00Z",
            "model": "m",
            "model_version": "01",
            "fps": 1,
            "frames": 2**31,
            "conf_threshold": 0.5,
        },
    ),
    ("/usage", {"nid": "0x66", "cpu": 1, "memory": 1, "func": "SUNNY", "message": "bad\u0000"}),
]


async def test_ingest_across_a_postgres_restart_and_a_vms_sigkill_with_a_poisoning_client(tmp_path):
    """Real processes: the VMS on a Postgres of the test's own; six edges post all along, a seventh
    loops records the database cannot store; Postgres is restarted, then the VMS is SIGKILLed and
    started again. Every acknowledged record is stored, no good record is refused, the poison is
    refused every time (422) and never stored, and the good edges get only 200 while nothing
    fails."""
    pg = PrivatePostgres().start()
    port = free_port()
    env = service_env(
        pg.url,
        VMS_UNKNOWN_NODES="flag",
        EDGE_SETUP_URL=f"http://127.0.0.1:{free_port()}",
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    base = f"http://127.0.0.1:{port}"
    proc = await asyncio.to_thread(start_service, "vms", env=env, port=port, tmp_path=tmp_path)
    run = uuid.uuid4().hex[:8]
    phase = "calm"
    good: dict[str, dict[int, int]] = {}
    poison: dict[str, dict[int, int]] = {}
    acknowledged: list[str] = []
    stop = asyncio.Event()

    def count(table: dict[str, dict[int, int]], status: int) -> None:
        table.setdefault(phase, {})
        table[phase][status] = table[phase].get(status, 0) + 1

    async def edge(worker: int) -> None:
        nid = f"0x{worker + 1:02x}"
        async with httpx.AsyncClient(base_url=base, headers=edge_headers(nid), timeout=10) as http:
            i = 0
            while not stop.is_set():
                marker = f"{run}-{worker}-{i}"
                i += 1
                try:
                    r = await http.post(
                        "/usage",
                        json={
                            "nid": nid,
                            "cpu": 5,
                            "memory": 5,
                            "func": "SUNNY",
                            "message": marker,
                        },
                    )
                except httpx.HTTPError:
                    count(good, -1)  # the VMS is down: unacknowledged, like a 503
                    await asyncio.sleep(0.05)
                    continue
                count(good, r.status_code)
                if r.status_code == 200:
                    acknowledged.append(marker)
                else:
                    await asyncio.sleep(0.05)

    async def poisoner() -> None:
        async with httpx.AsyncClient(base_url=base, headers=OPERATOR, timeout=10) as http:
            i = 0
            while not stop.is_set():
                route, body = POISON_BODIES[i % len(POISON_BODIES)]
                i += 1
                try:
                    r = await http.post(route, json=body)
                except httpx.HTTPError:
                    count(poison, -1)
                    await asyncio.sleep(0.05)
                    continue
                count(poison, r.status_code)

    tasks = [asyncio.create_task(edge(w)) for w in range(6)] + [asyncio.create_task(poisoner())]
    try:
        await asyncio.sleep(2)
        phase = "postgres restart"
        await asyncio.to_thread(pg.restart)
        await asyncio.sleep(2)
        phase = "vms sigkill"
        await asyncio.to_thread(proc.kill)
        proc = await asyncio.to_thread(start_service, "vms", env=env, port=port, tmp_path=tmp_path)
        await asyncio.sleep(2)
        phase = "after"
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        proc.stop()
    try:
        stored = {
            r["message"]
            for r in await fetch(
                pg.url, "SELECT message FROM vms.usage WHERE message LIKE $1", f"{run}-%"
            )
        }
        poisoned = await fetch(pg.url, "SELECT count(*) AS n FROM vms.usage WHERE nid = '0x66'")
    finally:
        await asyncio.to_thread(pg.stop)
    missing = [m for m in acknowledged if m not in stored]
    print(
        f"good edges by phase {good}; poison by phase {poison}; "
        f"{len(acknowledged)} acknowledged, {len(stored)} stored, {len(missing)} missing"
    )
    assert not missing, f"{len(missing)} acknowledged records lost"
    assert set(good["calm"]) == {200} and set(good["after"]) == {200}, good
    assert all(set(statuses) <= {200, 503, -1} for statuses in good.values()), good
    assert all(set(statuses) <= {422, 503, -1} for statuses in poison.values()), poison
    assert set(poison["calm"]) == {422} and set(poison["after"]) == {422}, poison
    assert poisoned[0]["n"] == 0
