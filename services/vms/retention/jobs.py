"""Scheduled storage maintenance: partitions ahead of time, retention by dropping old partitions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from services.vms.settings import VmsSettings
from services.vms.storage import partitions

log = logging.getLogger("edge.vms.retention")


async def maintain_partitions(pool: asyncpg.Pool, settings: VmsSettings) -> list[str]:
    """Create today's and the next days' partitions; drop those past VMS_RETENTION_DAYS. Returns the
    dropped."""
    today = datetime.now(UTC).date()
    async with pool.acquire() as conn:
        await partitions.ensure_days(
            conn, [today + timedelta(days=i) for i in range(settings.partitions_ahead_days + 1)]
        )
        return await partitions.drop_older_than(
            conn, today - timedelta(days=settings.retention_days)
        )


async def run_maintenance(pool: asyncpg.Pool, settings: VmsSettings) -> None:
    try:
        await maintain_partitions(pool, settings)
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        log.warning("partition maintenance failed, next run will retry: %s", exc)
