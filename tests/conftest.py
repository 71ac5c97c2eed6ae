"""Fixtures every test area shares: a database of the test run's own on the real Postgres,
per-test isolation by truncation, and in-process apps with their lifespan running."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from shared import migrations
from tests.helpers.database import asyncpg_url, create_database, drop_database
from tests.helpers.env import SERVICES, settings_for

# Tables kept across tests: reference data the migrations seed.
KEEP_TABLES = {"alembic_version", "condition_codes", "condition_ai_classes"}


@pytest.fixture(scope="session")
def database_url() -> str:
    """A fresh database for this test run, migrated to head for every service, dropped at the
    end."""
    name = f"edgetest_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(create_database(name))
    for service in SERVICES:
        if migrations.has_migrations(f"services.{service}"):
            migrations.upgrade(f"services.{service}", url)
    yield url
    asyncio.run(drop_database(name))


async def truncate_all(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        rows = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[])",
            list(SERVICES),
        )
        tables = [
            f'"{r["schemaname"]}"."{r["tablename"]}"'
            for r in rows
            if r["tablename"] not in KEEP_TABLES
        ]
        # Partitions are truncated through their parent; skip them.
        parts = await conn.fetch("SELECT inhrelid::regclass::text AS t FROM pg_inherits")
        children = {p["t"].replace('"', "") for p in parts}
        tables = [t for t in tables if t.replace('"', "") not in children]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: str) -> str:
    """Isolation: every table emptied before the test (reference data kept)."""
    await truncate_all(database_url)
    return database_url


@contextlib.asynccontextmanager
async def running_app(app) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an HTTP client speaking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=30
        ) as client:
            yield client


@pytest.fixture
async def setup_client(db: str) -> AsyncIterator[httpx.AsyncClient]:
    from services.setup.app import create_app

    app = create_app(settings_for("setup", db, notify_master=False))
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
