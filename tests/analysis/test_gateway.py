"""The gateway on its own (no worker): bad input, auth, the bounded queue, the token buckets,
Redis down."""

from __future__ import annotations

import json

from shared.edge_tokens import issue_edge_token
from tests.analysis.conftest import BUS, dead_redis_url, gateway, png_header_only, variant
from tests.helpers.env import OPERATOR, SERVICE, SIGNER


def edge(nid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_edge_token(nid, SIGNER)}"}


async def test_bad_images_get_a_422_naming_the_field(db, prefix):
    async with gateway(db, prefix) as client:
        cases = {
            "zero bytes": b"",
            "not an image": b"hello, this is text",
            "truncated JPEG": BUS[: len(BUS) // 2],
            "20,000 x 20,000 PNG": png_header_only(20_000, 20_000),
            "garbage behind a JPEG magic": b"\xff\xd8\xff" + b"\x00" * 64 + b"\xff\xd9",
        }
        for name, body in cases.items():
            r = await client.post("/analyze?async=true", content=body, headers=OPERATOR)
            assert r.status_code == 422, (name, r.text)
            error = r.json()["error"]
            assert error["type"] == "invalid" and error["field"] == "image", (name, error)
        assert (
            "20000 x 20000"
            in (
                await client.post(
                    "/analyze", content=cases["20,000 x 20,000 PNG"], headers=OPERATOR
                )
            ).json()["error"]["message"]
        )
        r = await client.post("/analyze", files={"other": ("a.jpg", BUS)}, headers=OPERATOR)
        assert r.status_code == 422 and r.json()["error"]["field"] == "image"
        r = await client.post(
            "/analyze",
            files={"image": ("a.jpg", BUS), "metadata": (None, "{broken")},
            headers=OPERATOR,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "metadata"
        bad_box = json.dumps(
            {"detections": [{"class": "person", "confidence": 2, "box": [0, 0, 1, 1]}]}
        )
        r = await client.post(
            "/analyze",
            files={"image": ("a.jpg", BUS), "metadata": (None, bad_box)},
            headers=OPERATOR,
        )
        assert (
            r.status_code == 422
            and r.json()["error"]["field"] == "metadata.detections.0.confidence"
        )
        # Nothing was queued by any of them.
        assert (await client.get("/queue", headers=OPERATOR)).json()["depth"] == 0


async def test_auth_and_unknown_jobs(db, prefix):
    async with gateway(db, prefix) as client:
        assert (await client.post("/analyze", content=BUS)).status_code == 401
        assert (
            await client.post("/analyze", content=BUS, headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        r = await client.post("/analyze?async=true&nid=0x02", content=BUS, headers=edge("0x01"))
        assert r.status_code == 403 and r.json()["error"]["field"] == "metadata.nid"
        r = await client.post("/analyze?async=true", content=BUS, headers=edge("0x01"))
        assert r.status_code == 202, r.text
        job = (await client.get(r.json()["poll"], headers=SERVICE)).json()
        assert job["status"] == "queued"
        r = await client.get("/jobs/0123456789abcdef0123456789abcdef", headers=OPERATOR)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
        assert (await client.get("/jobs/..%2Fetc", headers=OPERATOR)).status_code in (404, 422)
        assert (await client.get("/jobs/0123", headers={})).status_code == 401


async def test_a_full_queue_answers_503_with_retry_after(db, prefix):
    async with gateway(db, prefix, queue_max_jobs=3, retry_after_s=2) as client:
        for i in range(3):
            r = await client.post(
                "/analyze?async=true", content=variant(BUS, f"q{i}"), headers=OPERATOR
            )
            assert r.status_code == 202, r.text
        r = await client.post("/analyze?async=true", content=variant(BUS, "q3"), headers=OPERATOR)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert "queue is full" in r.json()["error"]["message"]
        assert (await client.get("/queue", headers=OPERATOR)).json()["depth"] == 3
        metrics = (await client.get("/metrics")).text
        assert 'analysis_requests_total{outcome="queue_full"} 1.0' in metrics


async def test_token_bucket_counts_exactly_per_caller(db, prefix):
    async with gateway(db, prefix, rate_per_s=0.01, rate_capacity=5) as client:
        codes = [
            (
                await client.post(
                    "/analyze?async=true", content=variant(BUS, f"r{i}"), headers=edge("0x01")
                )
            ).status_code
            for i in range(8)
        ]
        assert codes == [202] * 5 + [429] * 3
        r = await client.post("/analyze?async=true", content=BUS, headers=edge("0x01"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert (
            r.json()["error"]["type"] == "rate_limited"
            and "rate limit" in r.json()["error"]["message"]
        )
        # Another edge and the operator have buckets of their own.
        assert (
            await client.post("/analyze?async=true", content=BUS, headers=edge("0x02"))
        ).status_code == 202
        assert (
            await client.post("/analyze?async=true", content=BUS, headers=OPERATOR)
        ).status_code == 202
        assert "analysis_throttled_total 4.0" in (await client.get("/metrics")).text
    # The bucket is in Redis: a second gateway process (here a second app) shares it.
    async with gateway(db, prefix, rate_per_s=0.01, rate_capacity=5) as client:
        assert (
            await client.post("/analyze?async=true", content=BUS, headers=edge("0x01"))
        ).status_code == 429


async def test_a_global_bucket_limits_everyone_together(db, prefix):
    async with gateway(
        db, prefix, rate_per_s=0, global_rate_per_s=0.01, global_capacity=3
    ) as client:
        codes = [
            (
                await client.post(
                    "/analyze?async=true", content=variant(BUS, f"g{i}"), headers=edge(f"0x0{i}")
                )
            ).status_code
            for i in range(5)
        ]
        assert codes == [202, 202, 202, 429, 429]


async def test_redis_down_the_service_stays_up(db, prefix):
    async with gateway(
        db, prefix, redis_url=dead_redis_url(), rate_per_s=0.01, rate_capacity=2
    ) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and "unreachable" in ready.json()["detail"]["redis"]
        r = await client.post("/analyze?async=true", content=BUS, headers=OPERATOR)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "unreachable" in r.json()["error"]["message"]
        # The token bucket keeps counting in-process: one token left of two, then refusals.
        assert (await client.post("/analyze", content=BUS, headers=OPERATOR)).status_code == 503
        assert (await client.post("/analyze", content=BUS, headers=OPERATOR)).status_code == 429
        assert (await client.get("/jobs/0123456789abcdef", headers=OPERATOR)).status_code == 503
        assert "analysis_redis_degraded 1.0" in (await client.get("/metrics")).text


def test_edgectl_serve_analysis_runs_as_a_process(database_url, prefix, tmp_path):
    import httpx

    from tests.analysis.conftest import REDIS_URL
    from tests.helpers.env import free_port, service_env
    from tests.helpers.processes import start_service

    port = free_port()
    env = service_env(database_url, EDGE_REDIS_URL=REDIS_URL, ANALYSIS_KEY_PREFIX=prefix)
    proc = start_service("analysis", env=env, port=port, tmp_path=tmp_path)
    try:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["service"] == "analysis" and ready["detail"]["redis"] == "ok"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "analysis_queue_depth 0.0" in metrics
        r = httpx.post(f"http://127.0.0.1:{port}/analyze?async=true", content=BUS, headers=OPERATOR)
        assert r.status_code == 202
    finally:
        proc.stop()
