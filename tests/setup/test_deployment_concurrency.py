"""Concurrent writers on one deployment over HTTP (in-process setup, real Postgres, a real
connection pool): no update is lost, the generation never goes backwards, and of several bulk
updates that expect the same generation exactly one is accepted."""

from __future__ import annotations

import asyncio

from tests.helpers.env import OPERATOR
from tests.setup.test_packages_deployments import make_ai, make_edge

WRITERS = 30


async def _deployment(client) -> dict:
    edge = await make_edge(client, "0x01")
    ai = await make_ai(client)
    r = await client.post(
        "/deployments", json={"edge_id": edge["id"], "ai_id": ai["id"]}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_concurrent_patches_each_advance_the_generation(setup_client):
    dep = await _deployment(setup_client)
    start = dep["generation"]

    async def patch(i: int):
        return await setup_client.patch(
            f"/deployments/{dep['id']}", json={"params": {"writer": i}}, headers=OPERATOR
        )

    answers = await asyncio.gather(*(patch(i) for i in range(WRITERS)))
    assert [r.status_code for r in answers] == [200] * WRITERS, [
        r.text for r in answers if r.status_code != 200
    ]
    generations = sorted(r.json()["generation"] for r in answers)
    # Every writer saw its own generation: none lost, none answered twice.
    assert generations == list(range(start + 1, start + WRITERS + 1))
    stored = (await setup_client.get(f"/deployments/{dep['id']}", headers=OPERATOR)).json()
    assert stored["generation"] == start + WRITERS
    # The stored params are those of the writer that answered the highest generation.
    last = max(answers, key=lambda r: r.json()["generation"]).json()
    assert stored["params"] == last["params"]


async def test_bulk_updates_expecting_the_same_generation_accept_exactly_one(setup_client):
    dep = await _deployment(setup_client)

    async def bulk(i: int):
        op = {
            "op": "update",
            "id": dep["id"],
            "params": {"writer": i},
            "expected_generation": dep["generation"],
        }
        return await setup_client.post(
            "/deployments/bulk", json={"operations": [op]}, headers=OPERATOR
        )

    answers = await asyncio.gather(*(bulk(i) for i in range(10)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 9, [r.text for r in answers]
    stored = (await setup_client.get(f"/deployments/{dep['id']}", headers=OPERATOR)).json()
    assert stored["generation"] == dep["generation"] + 1


async def test_bulk_batches_touching_the_same_deployments_in_opposite_orders_both_apply(
    setup_client,
):
    edge = await make_edge(setup_client, "0x02")
    ai = await make_ai(setup_client)
    deps = []
    for _ in range(2):
        r = await setup_client.post(
            "/deployments",
            json={"edge_id": edge["id"], "ai_id": ai["id"], "allow_multiple": True},
            headers=OPERATOR,
        )
        deps.append(r.json())
    a, b = deps[0]["id"], deps[1]["id"]

    async def batch(first: int, second: int, i: int):
        ops = [
            {"op": "update", "id": first, "params": {"w": i}},
            {"op": "update", "id": second, "params": {"w": i}},
        ]
        return await setup_client.post(
            "/deployments/bulk", json={"operations": ops}, headers=OPERATOR
        )

    answers = await asyncio.gather(
        *(batch(a, b, i) if i % 2 else batch(b, a, i) for i in range(10))
    )
    assert [r.status_code for r in answers] == [200] * 10, [
        r.text for r in answers if r.status_code != 200
    ]
    for dep in deps:
        stored = (await setup_client.get(f"/deployments/{dep['id']}", headers=OPERATOR)).json()
        assert stored["generation"] == dep["generation"] + 10
