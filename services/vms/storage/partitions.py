"""Daily partitions of the observation tables: create ahead, create on demand, drop past
retention."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

import asyncpg

from services.vms.models import PARTITIONED_TABLES

log = logging.getLogger("edge.vms.partitions")

_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<day>\d{8})$")
# Serialises DDL on the partitions across workers and replicas.
DDL_LOCK_ID = 0x766D7331  # "vms1"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def utc_day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


async def ensure(conn: asyncpg.Connection, table: str, day: date) -> None:
    """Create the day's partition if it is missing (idempotent; safe with several writers)."""
    name = partition_name(table, day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK_ID)
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS vms."{name}" PARTITION OF vms."{table}" '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


async def ensure_days(conn: asyncpg.Connection, days: list[date]) -> None:
    for table in PARTITIONED_TABLES:
        for day in days:
            await ensure(conn, table, day)


async def existing(conn: asyncpg.Connection) -> dict[str, set[date]]:
    rows = await conn.fetch(
        """
        SELECT c.relname AS name FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'vms'
        """
    )
    found: dict[str, set[date]] = {t: set() for t in PARTITIONED_TABLES}
    for row in rows:
        m = _NAME.match(row["name"])
        if m and m["table"] in found:
            found[m["table"]].add(datetime.strptime(m["day"], "%Y%m%d").date())
    return found


async def drop_older_than(conn: asyncpg.Connection, cutoff: date) -> list[str]:
    """Drop every partition whose whole day is before ``cutoff``; return their names."""
    dropped = []
    for table, days in (await existing(conn)).items():
        for day in sorted(d for d in days if d < cutoff):
            name = partition_name(table, day)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK_ID)
                await conn.execute(f'DROP TABLE IF EXISTS vms."{name}"')
            dropped.append(name)
    if dropped:
        log.info("retention dropped %d partitions older than %s", len(dropped), cutoff)
    return dropped
