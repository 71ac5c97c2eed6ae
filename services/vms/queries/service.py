"""Query logic: the fleet's current state, a node's downsampled series, detections with filters."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import orjson
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from services.vms.nodes.directory import NodeDirectory
from services.vms.queries import repository
from services.vms.settings import VmsSettings
from shared.contracts import columnar
from shared.db import page
from shared.deps import from_app_state
from shared.errors import Invalid, NotFound

_STEP = re.compile(r"^(?P<n>\d+(\.\d+)?)(?P<unit>ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_step(value: str) -> timedelta:
    m = _STEP.match(value.strip())
    if not m:
        raise Invalid(f"{value!r} is not a step: use seconds or 30s, 5m, 1h, 1d", field="step")
    seconds = float(m["n"]) * _UNITS[m["unit"]]
    if seconds < 1:
        raise Invalid("the step is at least one second", field="step")
    return timedelta(seconds=seconds)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class QueryService:
    def __init__(self, settings: VmsSettings, directory: NodeDirectory):
        self.settings = settings
        self.directory = directory

    async def fleet_state(
        self,
        session: AsyncSession,
        nids: list[str] | None,
        include_silent: bool,
        since: datetime | None = None,
    ) -> bytes:
        """GET /nodes/state as JSON bytes: the items are built by Postgres and passed through (at
        100,000 nodes, rows -> dicts -> JSON in Python cost seconds).

        ``since``: only nodes whose state changed after it (written, or turned stale); registered
        nodes that never reported are listed only in full answers (they have no state to change)."""
        silent = self._silent(nids, include_silent, since)
        items, generated_at = await repository.node_states_json(
            session,
            nids=nids,
            silent=silent,
            since=since,
            stale_after_s=self.settings.stale_after_s,
        )
        tail = orjson.dumps(
            {
                "generated_at": generated_at,
                "stale_after_s": self.settings.stale_after_s,
                "conditions": self.directory.conditions,
            }
        )
        return b'{"items":' + items.encode() + b"," + tail[1:]

    async def fleet_state_arrow(
        self,
        session: AsyncSession,
        nids: list[str] | None,
        include_silent: bool,
        since: datetime | None = None,
        names: frozenset[str] | None = None,
    ) -> bytes:
        """The same answer in the Arrow form (shared.contracts.columnar): one table ``nodes``,
        streamed by Postgres as CSV and parsed by pyarrow (no per-value object); ``names``: only
        those columns."""
        silent = self._silent(nids, include_silent, since)
        table, generated_at = await repository.node_state_table(
            session,
            nids=nids,
            silent=silent,
            since=since,
            stale_after_s=self.settings.stale_after_s,
            names=names,
        )
        meta = {
            "generated_at": generated_at,
            "stale_after_s": self.settings.stale_after_s,
            "conditions": self.directory.conditions,
        }
        return await asyncio.to_thread(columnar.encode, [("nodes", table)], meta)

    def _silent(
        self, nids: list[str] | None, include_silent: bool, since: datetime | None
    ) -> list[str] | None:
        if since is not None and since.tzinfo is None:
            raise Invalid("since needs a time zone (e.g. 2026-11-22T03:00:00+00:00)", field="since")
        if include_silent and since is None:
            wanted = self.directory.nids if nids is None else self.directory.nids & set(nids)
            return sorted(wanted) or None
        return None

    async def series(
        self,
        session: AsyncSession,
        nid: str,
        kind: str,
        start: datetime | None,
        end: datetime | None,
        step: str,
    ) -> dict[str, Any]:
        end = _aware(end) or datetime.now(UTC)
        start = _aware(start) or end - timedelta(hours=1)
        if start >= end:
            raise Invalid("start must be before end", field="start")
        delta = parse_step(step)
        points = (end - start) / delta
        if points > self.settings.max_series_points:
            raise Invalid(
                f"{int(points)} points: more than "
                f"{self.settings.max_series_points}; use a larger step",
                field="step",
            )
        if not await self.directory.is_known(nid) and not await repository.has_node(session, nid):
            raise NotFound(
                f"no node {nid!r}: not registered in setup and never reported", field="nid"
            )
        rows = await repository.series(session, kind, nid, start, end, delta)
        for row in rows:
            row["t"] = row["t"].isoformat()
            for key, value in row.items():
                if isinstance(value, Decimal):  # Postgres' avg() of integers: numbers on the wire
                    row[key] = float(value)
        return {
            "nid": nid,
            "kind": kind,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "step_s": delta.total_seconds(),
            "points": rows,
        }

    async def detections(self, session: AsyncSession, **filters: Any) -> dict[str, Any]:
        limit, offset = filters["limit"], filters["offset"]
        if limit > self.settings.max_page_size:
            raise Invalid(f"at most {self.settings.max_page_size}", field="limit")
        filters["start"], filters["end"] = _aware(filters["start"]), _aware(filters["end"])
        items, total = await repository.detections(session, **filters)
        for item in items:
            item["ts"] = item["ts"].isoformat()
            item["received_at"] = item["received_at"].isoformat()
        return page(items, total=total, limit=limit, offset=offset)


QueriesDep = Annotated[QueryService, Depends(from_app_state("queries", QueryService))]
