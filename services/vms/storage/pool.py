"""The ingest path's own asyncpg pool (SQLAlchemy stays for reads; Alembic owns the schema)."""

from __future__ import annotations

import asyncpg

INGEST_APPLICATION_NAME = "edge-vms-ingest"


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection handed back, besides rolling back a transaction left
    open (asyncpg always does that): nothing. Its default reset is a round trip a commit
    (``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) undoing session
    state this pool's users never make: they hold only transaction-scoped advisory locks
    (storage.partitions), no cursor outside a transaction, no LISTEN, no SET."""


async def create_ingest_pool(database_url: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        asyncpg_dsn(database_url),
        min_size=1,
        max_size=max(2, size),
        server_settings={"application_name": INGEST_APPLICATION_NAME},
        # Statements are few and fixed; a dropped connection is replaced on the next acquire.
        max_inactive_connection_lifetime=300,
        reset=_keep_session,
    )
