"""Query logic: the fleet's current state, a node's downsampled series, detections with filters."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.vms.nodes.directory import NodeDirectory
from services.vms.queries import repository
from services.vms.settings import VmsSettings
from shared.db import page
from shared.errors import Invalid

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
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def node_view(row: dict[str, Any], now: datetime, stale_after: timedelta) -> dict[str, Any]:
    last_seen = row.get("last_seen")
    usage = None
    if row.get("usage_at") is not None:
        usage = {
            "at": _iso(row["usage_at"]),
            "cpu": row["cpu"],
            "memory": row["memory"],
            "func": row["func"],
            "cpu_avg": row["cpu_avg"],
            "memory_avg": row["memory_avg"],
        }
    detections = None
    if row.get("detections_at") is not None:
        detections = {
            "at": _iso(row["detections_at"]),
            **(row["detections"] or {}),
            "low_confidence_share": row["low_confidence_share"],
        }
    return {
        "nid": row["nid"],
        "known": row.get("known", True),
        "authenticated": row.get("authenticated", False),
        "condition": row.get("condition"),
        "condition_code": row.get("condition_code"),
        "previous_condition": row.get("previous_condition"),
        "streak": row.get("streak") or 0,
        "condition_since": _iso(row.get("condition_since")),
        "environment_at": _iso(row.get("environment_at")),
        "usage": usage,
        "detections": detections,
        "last_seen": _iso(last_seen),
        "stale": last_seen is None or now - last_seen > stale_after,
    }


class QueryService:
    def __init__(self, settings: VmsSettings, directory: NodeDirectory):
        self.settings = settings
        self.directory = directory

    async def fleet_state(self, session: AsyncSession, nids: list[str] | None, include_silent: bool) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        stale_after = timedelta(seconds=self.settings.stale_after_s)
        rows = await repository.node_states(session, nids)
        items = [node_view(r, now, stale_after) for r in rows]
        if include_silent:
            # Registered nodes that never reported are part of the fleet too (stale, no data).
            seen = {r["nid"] for r in rows}
            wanted = self.directory.nids if nids is None else self.directory.nids & set(nids)
            items += [node_view({"nid": n, "known": True}, now, stale_after) for n in sorted(wanted - seen)]
            items.sort(key=lambda i: i["nid"])
        return {
            "items": items,
            "generated_at": now.isoformat(),
            "stale_after_s": self.settings.stale_after_s,
            "conditions": self.directory.conditions,
        }

    async def series(
        self, session: AsyncSession, nid: str, kind: str, start: datetime | None, end: datetime | None, step: str
    ) -> dict[str, Any]:
        end = _aware(end) or datetime.now(timezone.utc)
        start = _aware(start) or end - timedelta(hours=1)
        if start >= end:
            raise Invalid("start must be before end", field="start")
        delta = parse_step(step)
        points = (end - start) / delta
        if points > self.settings.max_series_points:
            raise Invalid(
                f"{int(points)} points: more than {self.settings.max_series_points}; use a larger step", field="step"
            )
        rows = await repository.series(session, kind, nid, start, end, delta)
        for row in rows:
            row["t"] = row["t"].isoformat()
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
