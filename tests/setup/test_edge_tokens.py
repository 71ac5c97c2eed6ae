"""Setup's side of edge tokens and credentials: renewal, workload tokens, scopes, agent URLs."""

from __future__ import annotations

from shared.edge_tokens import decode_edge_token
from tests.helpers.env import KEYS, OPERATOR, SERVICE, service_credential


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client, nid: str = "0x01", **extra) -> dict:
    body = {"name": f"edge-{nid}", "nid": nid, **extra}
    r = await client.post("/edges", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return r.json()


async def test_an_edge_renews_its_own_token_and_nobody_else_can(setup_client):
    edge = await register(setup_client)
    first = decode_edge_token(edge["token"], KEYS)
    assert first is not None and first.nid == "0x01"

    r = await setup_client.post("/edges/me/token", headers=auth(edge["token"]))
    assert r.status_code == 200, r.text
    renewed = decode_edge_token(r.json()["token"], KEYS)
    assert renewed is not None and renewed.nid == "0x01" and renewed.token_id > first.token_id
    assert r.json()["expires_at"] == renewed.expires_at >= first.expires_at
    # Renewal does not revoke: the old token stays valid until it expires (no gap for the agent).
    assert (
        await setup_client.post("/edges/me/token", headers=auth(edge["token"]))
    ).status_code == 200

    assert (await setup_client.post("/edges/me/token")).status_code == 401
    assert (await setup_client.post("/edges/me/token", headers=OPERATOR)).status_code == 403
    assert (await setup_client.post("/edges/me/token", headers=SERVICE)).status_code == 403


async def test_workload_tokens_and_revocations_only_for_the_services_that_need_them(setup_client):
    edge = await register(setup_client, "0x02")
    master, vms, optimizer = (auth(service_credential(n)) for n in ("master", "vms", "optimizer"))

    r = await setup_client.post(f"/edges/{edge['id']}/workload-token", headers=master)
    assert r.status_code == 200, r.text
    assert decode_edge_token(r.json()["token"], KEYS).nid == "0x02"
    for who in (vms, optimizer, OPERATOR, auth(edge["token"])):
        assert (
            await setup_client.post(f"/edges/{edge['id']}/workload-token", headers=who)
        ).status_code == 403

    # Camera credentials in clear: the master only.
    assert (
        await setup_client.get(f"/edges/{edge['id']}/camera", headers=master)
    ).status_code == 200
    for who in (vms, optimizer, auth(edge["token"])):
        assert (
            await setup_client.get(f"/edges/{edge['id']}/camera", headers=who)
        ).status_code == 403

    rotated = (await setup_client.post(f"/edges/{edge['id']}/token", headers=OPERATOR)).json()
    r = await setup_client.get("/edges/token-revocations", headers=vms)
    assert r.status_code == 200
    assert r.json()["min_token_id"]["0x02"] == decode_edge_token(rotated["token"], KEYS).token_id
    assert (
        await setup_client.get("/edges/token-revocations", headers=auth(rotated["token"]))
    ).status_code == 403


async def test_service_credentials_cannot_change_the_fleet(setup_client):
    """Issue 16 item 3: only the operator creates clusters and edges; a service only its job."""
    for name in ("master", "optimizer", "vms"):
        r = await setup_client.post(
            "/clusters", json={"name": f"by-{name}"}, headers=auth(service_credential(name))
        )
        assert r.status_code == 403, (name, r.text)
        r = await setup_client.post(
            "/edges",
            json={"name": f"e-{name}", "nid": f"n-{name}"},
            headers=auth(service_credential(name)),
        )
        assert r.status_code == 403, name
    # The shared service token of old deployments: scoped the same way (never an operator change).
    assert (
        await setup_client.post("/clusters", json={"name": "by-legacy"}, headers=SERVICE)
    ).status_code == 403
    assert (
        await setup_client.post("/clusters", json={"name": "ok"}, headers=OPERATOR)
    ).status_code == 201


async def test_agent_urls_are_http_and_never_link_local(setup_client):
    refused = [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]:9101",
        "http://0.0.0.0:9101",
        "http://224.0.0.1:9101",
        "http://user:pw@127.0.0.5:9101",
        "http:///nohost",
    ]
    for i, url in enumerate(refused):
        r = await setup_client.post(
            "/edges",
            json={"name": f"bad-{i}", "nid": f"0xb{i}", "agent_url": url},
            headers=OPERATOR,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "agent_url", (url, r.text)
    for i, url in enumerate(
        ["http://127.0.0.5:9101", "https://edge-07.lan:9101", "http://127.0.0.1:8101"]
    ):
        await register(setup_client, f"0xa{i}", agent_url=url)
    edge = await register(setup_client, "0xc1")
    r = await setup_client.patch(
        f"/edges/{edge['id']}", json={"agent_url": "http://169.254.169.254"}, headers=OPERATOR
    )
    assert r.status_code == 422


async def test_old_revocations_are_dropped_on_a_write_never_by_the_services_read(setup_client, db):
    import asyncpg

    from tests.helpers.database import asyncpg_url

    old = await register(setup_client, "0x07")
    r = await setup_client.delete(f"/edges/{old['id']}", headers=OPERATOR)
    assert r.status_code in (200, 204), r.text
    vms = auth(service_credential("vms"))
    listed = (await setup_client.get("/edges/token-revocations", headers=vms)).json()
    assert "0x07" in listed["min_token_id"]

    # The revocation is older than any token's lifetime: it protects nothing any more.
    conn = await asyncpg.connect(asyncpg_url(db))
    try:
        await conn.execute(
            "UPDATE setup.edge_token_revocations SET revoked_at = now() - interval '400 days'"
        )
    finally:
        await conn.close()
    for _ in range(2):  # reading the list leaves it as it is
        listed = (await setup_client.get("/edges/token-revocations", headers=vms)).json()
        assert "0x07" in listed["min_token_id"]
    await register(setup_client, "0x08")  # issuing a token prunes
    listed = (await setup_client.get("/edges/token-revocations", headers=vms)).json()
    assert "0x07" not in listed["min_token_id"]
