"""Databases of their own on the real Postgres, for a test run or a benchmark."""

from __future__ import annotations

import asyncpg

from tests.helpers.env import ADMIN_URL


def database_url(name: str) -> str:
    """The asyncpg SQLAlchemy URL of database ``name`` on the admin URL's server."""
    return (
        ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    )


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def admin(sql: str) -> None:
    """Run one statement as the admin (CREATE / DROP DATABASE ...)."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str) -> str:
    await admin(f'CREATE DATABASE "{name}"')
    return database_url(name)


async def drop_database(name: str) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
