"""The Arrow snapshot is streamed by Postgres (COPY): when the server ends that connection in the
middle of it, the answer is a 503 with Retry-After (overload, retry), never a 500, and the next
read works on a new connection."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.contracts import columnar
from tests.helpers.database import asyncpg_url
from tests.helpers.env import OPERATOR

EDGES = 100_000
SEED = """
INSERT INTO setup.edges (id, name, nid, cluster_id, type, address, supports_analysis,
                         description, status, created_at, updated_at)
SELECT g, 'edge-' || g, '0x' || to_hex(g), $CLUSTER, 1, 'a street, with a comma', false,
       'a "quoted" description', 'active', now(), now()
  FROM generate_series(1, $N) g;
SELECT setval(pg_get_serial_sequence('setup.edges', 'id'), $N);
"""
# The backend running this database's snapshot COPY, ended as an administrator (or a failover)
# would; the number of backends ended.
END_COPY = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY (%'
"""


async def test_a_snapshot_whose_connection_is_lost_is_a_503(db: str, setup_client) -> None:
    r = await setup_client.post("/clusters", json={"name": "big"}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    admin = await asyncpg.connect(asyncpg_url(db))
    try:
        sql = SEED.replace("$N", str(EDGES)).replace("$CLUSTER", str(r.json()["id"]))
        await admin.execute(sql)
        headers = {"Accept": columnar.ARROW_STREAM, **OPERATOR}
        read = asyncio.create_task(setup_client.get("/fleet/snapshot", headers=headers))
        ended = 0
        while not read.done() and not ended:
            ended = await admin.fetchval(END_COPY)
        assert ended, "the snapshot's COPY was not seen running (it finished first)"
        r = await read
    finally:
        await admin.close()
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["type"] == "unavailable", r.text

    # The next read is served whole, on a new connection.
    r = await setup_client.get("/fleet/snapshot", headers=headers)
    assert r.status_code == 200, r.text
    tables, _ = columnar.decode(r.content)
    assert tables["edges"].num_rows == EDGES
