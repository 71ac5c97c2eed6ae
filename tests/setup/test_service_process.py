"""`edgectl serve setup` as a real process, and the migrations from empty to head and back."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from shared import migrations
from tests.helpers.database import asyncpg_url, create_database, drop_database
from tests.helpers.env import free_port, service_env
from tests.helpers.processes import Proc, edgectl, start_service


def test_serve_setup_answers_health_docs_and_metrics(database_url, tmp_path):
    port = free_port()
    proc = start_service("setup", env=service_env(database_url), port=port, tmp_path=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert "swagger" in httpx.get(f"{base}/docs").text.lower()
        assert "/edges" in httpx.get(f"{base}/openapi.json").json()["paths"]
        httpx.get(f"{base}/clusters")
        metrics = httpx.get(f"{base}/metrics").text
        assert (
            'http_requests_total{method="GET",route="/clusters",service="setup",status="401"}'
            in metrics
        )
        assert "http_request_duration_seconds_bucket" in metrics
    finally:
        proc.stop()
    assert "test-operator-token" not in proc.log_text()


def test_refuses_to_start_in_production_without_secrets(database_url, tmp_path):
    env = service_env(database_url)
    del env["EDGE_OPERATOR_TOKEN"]
    proc = Proc(
        edgectl("serve", "setup", "--port", str(free_port())), env=env, log_path=tmp_path / "s.log"
    )
    assert proc.popen.wait(timeout=30) == 2
    assert "EDGE_OPERATOR_TOKEN" in proc.log_text()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    port = free_port()
    env = service_env(
        "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", EDGE_MIGRATE_ON_START="false"
    )
    proc = Proc(
        edgectl("serve", "setup", "--port", str(port)), env=env, log_path=tmp_path / "s.log"
    )
    try:
        from tests.helpers.processes import wait_http

        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
    finally:
        proc.stop()


def test_migrations_run_from_empty_to_head_and_back():
    name = f"edgemig_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(name))
    try:
        for service in ("setup", "master", "optimizer", "vms"):
            package = f"services.{service}"
            if not migrations.has_migrations(package):
                continue
            migrations.upgrade(package, url)
            migrations.upgrade(package, url)  # idempotent
            migrations.downgrade(package, url, "base")
            migrations.upgrade(package, url)

        async def tables():
            conn = await asyncpg.connect(asyncpg_url(url))
            try:
                return {
                    r["tablename"]
                    for r in await conn.fetch(
                        "SELECT tablename FROM pg_tables WHERE schemaname='setup'"
                    )
                }
            finally:
                await conn.close()

        assert {
            "edges",
            "ai_packages",
            "deployments",
            "clusters",
            "masters",
            "alembic_version",
        } <= asyncio.run(tables())
    finally:
        asyncio.run(drop_database(name))


def test_serve_with_several_workers(database_url, tmp_path):
    port = free_port()
    proc = Proc(
        edgectl("serve", "setup", "--port", str(port), "--workers", "2"),
        env=service_env(database_url),
        log_path=tmp_path / "w.log",
    )
    try:
        from tests.helpers.processes import wait_http

        wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc, timeout=60)
        workers = [p for p in __import__("psutil").Process(proc.pid).children(recursive=True)]
        assert len(workers) >= 2
        for _ in range(5):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["service"] == "setup"
    finally:
        proc.stop()
