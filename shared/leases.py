"""Leadership among replicas of a service: a lease row in the service's own ``leases`` table
(name, holder, acquired_at, expires_at). The holder renews it well within ``ttl_s``; when it dies,
the lease expires after ``ttl_s`` and the next replica to try takes it. A row (not a session
advisory lock) so that who leads is visible and survives pooled connections. The optimizer's
decider and the master's board of desired sets use it."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_ACQUIRE = """
    INSERT INTO {table} AS leases (name, holder, acquired_at, expires_at)
    VALUES (:name, :me, now(), now() + make_interval(secs => :ttl))
    ON CONFLICT (name) DO UPDATE
       SET holder = EXCLUDED.holder,
           acquired_at = CASE WHEN leases.holder = EXCLUDED.holder
                              THEN leases.acquired_at ELSE now() END,
           expires_at = EXCLUDED.expires_at
     WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
    RETURNING holder
"""


def replica_name(configured: str = "") -> str:
    """This process's name in a lease (default: host:pid)."""
    return configured or f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    def __init__(
        self, engine: AsyncEngine, ttl_s: float, replica_id: str = "", *, table: str, name: str
    ):
        """``table``: the schema-qualified leases table (``optimizer.leases``); ``name``: the
        lease's row (one per thing that only one replica may do)."""
        self.engine = engine
        self.ttl_s = ttl_s
        self.me = replica_name(replica_id)
        self.name = name
        self.table = table
        self.held = False
        self._acquire = text(_ACQUIRE.format(table=table))

    async def acquire(self) -> bool:
        """Take or renew the lease; True while this replica leads."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    self._acquire, {"name": self.name, "me": self.me, "ttl": self.ttl_s}
                )
            ).first()
        self.held = row is not None
        return self.held

    async def release(self) -> None:
        if self.held:
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(f"DELETE FROM {self.table} WHERE name = :name AND holder = :me"),
                    {"name": self.name, "me": self.me},
                )
            self.held = False

    async def holder(self) -> dict | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT holder, acquired_at, expires_at, expires_at > now() AS live"
                        f" FROM {self.table} WHERE name = :name"
                    ),
                    {"name": self.name},
                )
            ).first()
        if row is None:
            return None
        return {
            "holder": row.holder,
            "acquired_at": _iso(row.acquired_at),
            "expires_at": _iso(row.expires_at),
            "live": row.live,
            "this_replica": row.holder == self.me,
        }


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None
