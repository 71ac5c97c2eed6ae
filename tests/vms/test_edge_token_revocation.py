"""Edge tokens are revocable, expire, and prove their node: the VMS with the real setup process.

Issue 16 item 2: a rotated or deleted edge's token dies on the VMS (whose fast path caches
principals by token) and on setup within seconds, pushed, with no call to setup per record.
Issue 15 item 1: a newly registered edge's first records are accepted at once.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from shared.edge_tokens import issue_edge_token
from tests.helpers.env import EDGE_TOKEN_SECRET, OPERATOR, SIGNER
from tests.vms.conftest import field_date_time, vms
from tests.vms.test_with_setup import edge_payload
from tests.vms.test_with_setup import setup_url as setup_url  # the fixture

# Long enough that only the push (NOTIFY) can explain a revocation seen within seconds.
NO_POLLING = {
    "nodes_refresh_s": 3600.0,
    "nodes_miss_refresh_s": 3600.0,
    "revocations_refresh_s": 3600.0,
}


def register(setup_url: str, name: str, nid: str) -> tuple[int, str]:
    with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
        clusters = c.get("/clusters").json()["items"]
        cluster = (
            clusters[0] if clusters else c.post("/clusters", json={"name": "token-tests"}).json()
        )
        r = c.post("/edges", json=edge_payload(name, nid, cluster["id"]))
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["token"]


def usage(nid: str) -> dict:
    return {"nid": nid, "cpu": 5, "memory": 6, "func": "SUNNY"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused_within(client: httpx.AsyncClient, nid: str, token: str, limit_s: float) -> float:
    """Seconds until the VMS answers 401 to the token (posting every 20 ms), or fail."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        r = await client.post("/usage", json=usage(nid), headers=bearer(token))
        if r.status_code == 401:
            return time.monotonic() - start
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.02)
    raise AssertionError(f"the revoked token still works after {limit_s} s")


async def test_rotated_and_deleted_tokens_die_on_the_vms_and_setup_within_seconds(db, setup_url):
    edge_id, old = register(setup_url, "EdgeCCTV01", "0x01")
    async with vms(db, setup_url=setup_url, **NO_POLLING) as client:
        for _ in range(3):  # the fast path now remembers the token
            assert (
                await client.post("/usage", json=usage("0x01"), headers=bearer(old))
            ).status_code == 200

        with httpx.Client(base_url=setup_url, timeout=10) as c:
            new = c.post(f"/edges/{edge_id}/token", headers=OPERATOR).json()["token"]
            rotated_after = await refused_within(client, "0x01", old, limit_s=3)
            assert (
                await client.post("/usage", json=usage("0x01"), headers=bearer(new))
            ).status_code == 200
            # Setup refuses it too (its own copy, pushed the same way).
            assert c.post("/edges/me/token", headers=bearer(old)).status_code == 401
            assert c.post("/edges/me/token", headers=bearer(new)).status_code == 200

            assert c.delete(f"/edges/{edge_id}", headers=OPERATOR).status_code == 204
            deleted_after = await refused_within(client, "0x01", new, limit_s=3)
            assert c.post("/edges/me/token", headers=bearer(new)).status_code == 401
        print(
            f"revoked on the VMS after {rotated_after * 1000:.0f} ms (rotation), "
            f"{deleted_after * 1000:.0f} ms (deletion)"
        )


async def test_the_scheduled_reread_catches_a_missed_push(db, setup_url):
    """The safety net: a revocation whose NOTIFY never came applies at the next scheduled read."""
    _, token = register(setup_url, "EdgeCCTV02", "0x02")
    async with vms(
        db, setup_url=setup_url, nodes_refresh_s=3600.0, revocations_refresh_s=0.5
    ) as client:
        assert (
            await client.post("/usage", json=usage("0x02"), headers=bearer(token))
        ).status_code == 200
        conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
        try:  # written behind setup's back: no NOTIFY
            await conn.execute(
                "INSERT INTO setup.edge_token_revocations (nid, min_token_id, revoked_at) "
                "VALUES ('0x02', 1000000, now())"
            )
        finally:
            await conn.close()
        await refused_within(client, "0x02", token, limit_s=3)


async def test_a_new_edge_is_accepted_at_once_with_its_token(db, setup_url):
    """Issue 15 item 1: the node list is not due for a refresh, the token proves the node."""
    register(setup_url, "EdgeCCTV03", "0x03")
    async with vms(db, setup_url=setup_url, **NO_POLLING) as client:
        _, token = register(setup_url, "EdgeCCTV04", "0x04")  # after the VMS read the node list
        date, hhmmss = field_date_time()
        r = await client.post("/usage", json=usage("0x04"), headers=bearer(token))
        assert r.status_code == 200, r.text
        r = await client.post(
            "/save_edgeData",
            json={"nid": "0x04", "date": date, "time": hhmmss, "result": "0"},
            headers=bearer(token),
        )
        assert r.status_code == 200 and r.json()["code"] == "0000", r.text
        # Without a token the node is still unknown to this VMS until its list is refreshed.
        r = await client.post("/usage", json=usage("0x04"), headers=OPERATOR)
        assert r.status_code == 422


async def test_expired_and_old_format_tokens_are_refused(db):
    async with vms(db) as client:
        expired = issue_edge_token("0x05", SIGNER, ttl_s=-1)
        r = await client.post("/usage", json=usage("0x05"), headers=bearer(expired))
        assert r.status_code == 401
        # The permanent format of before (nid.random.hmac) is no longer a token.
        from shared.edge_tokens import PREFIX, _sign

        body = f"{b'0x05'.hex()}.abcdefabcdef"
        permanent = f"{PREFIX}{body}.{_sign(body, EDGE_TOKEN_SECRET)}"
        assert (
            await client.post("/usage", json=usage("0x05"), headers=bearer(permanent))
        ).status_code == 401
