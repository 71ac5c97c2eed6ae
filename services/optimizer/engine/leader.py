"""Leadership among optimizer replicas: the ``decider`` lease in ``optimizer.leases``
(shared.leases: renewed every ``lease_renew_s``, taken over once it expires, ``lease_ttl_s``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from shared import leases

LEASE = "decider"


class Lease(leases.Lease):
    def __init__(self, engine: AsyncEngine, ttl_s: float, replica_id: str = ""):
        super().__init__(engine, ttl_s, replica_id, table="optimizer.leases", name=LEASE)
