"""One batch, one transaction: COPY the observations, then fold them into node_state (set-based)."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.vms.nodes.state import STATE_COLUMNS, Record, fold
from services.vms.settings import VmsSettings

COLUMNS: dict[str, tuple[str, ...]] = {
    "usage": ("nid", "ts", "received_at", "cpu", "memory", "func", "username", "code", "message", "authenticated", "known"),
    "environment": ("nid", "ts", "received_at", "result", "condition", "authenticated", "known"),
    "detections": (
        "nid", "ts", "received_at", "model", "model_version", "fps", "frames",
        "inference_mean_ms", "inference_p50_ms", "inference_max_ms", "conf_threshold",
        "counts", "detections", "detected", "below_threshold", "frames_sent_up", "min_confidence",
        "authenticated", "known",
    ),
}

_STATE_TYPES = {
    "known": "bool",
    "authenticated": "bool",
    "condition": "text",
    "condition_code": "text",
    "previous_condition": "text",
    "streak": "int4",
    "condition_since": "timestamptz",
    "environment_at": "timestamptz",
    "usage_at": "timestamptz",
    "cpu": "float8",
    "memory": "float8",
    "func": "text",
    "cpu_avg": "float8",
    "memory_avg": "float8",
    "detections_at": "timestamptz",
    "detections": "jsonb",
    "low_confidence_share": "float8",
    "last_seen": "timestamptz",
    "updated_at": "timestamptz",
}

_ENSURE_ROWS = """
INSERT INTO vms.node_state (nid, known, authenticated)
SELECT nid, true, false FROM unnest($1::text[]) AS t(nid) ORDER BY nid
ON CONFLICT (nid) DO NOTHING
"""
# Locks are taken in nid order in every transaction, so concurrent writers cannot deadlock.
_LOCK_ROWS = f"""
SELECT nid, {", ".join(STATE_COLUMNS)} FROM vms.node_state
WHERE nid = ANY($1::text[]) ORDER BY nid FOR UPDATE
"""
_UPDATE_ROWS = (
    "UPDATE vms.node_state AS n SET "
    + ", ".join(f"{c} = b.{c}" for c in STATE_COLUMNS)
    + " FROM unnest($1::text[], "
    + ", ".join(f"${i + 2}::{_STATE_TYPES[c]}[]" for i, c in enumerate(STATE_COLUMNS))
    + ") AS b(nid, "
    + ", ".join(STATE_COLUMNS)
    + ") WHERE n.nid = b.nid"
)


async def copy_records(conn: asyncpg.Connection, records: list[Record]) -> None:
    by_kind: dict[str, list[tuple]] = defaultdict(list)
    for record in records:
        by_kind[record.kind].append(record.row)
    for kind, rows in by_kind.items():
        await conn.copy_records_to_table(kind, records=rows, columns=COLUMNS[kind], schema_name="vms")


async def update_node_state(
    conn: asyncpg.Connection, records: list[Record], settings: VmsSettings, now: datetime
) -> list[dict[str, Any]]:
    nids = sorted({r.nid for r in records})
    await conn.execute(_ENSURE_ROWS, nids)
    rows = await conn.fetch(_LOCK_ROWS, nids)
    states: dict[str, dict[str, Any]] = {}
    for row in rows:
        state = dict(row)
        if state["detections"] is not None:
            state["detections"] = orjson.loads(state["detections"])
        states[row["nid"]] = state
    events: list[dict[str, Any]] = []
    for record in sorted(records, key=lambda r: r.ts):
        events += fold(
            states[record.nid],
            record,
            now=now,
            ewma_alpha=settings.ewma_alpha,
            low_confidence_alpha=settings.low_confidence_alpha,
            low_confidence_threshold=settings.low_confidence_share,
            event_classes=settings.event_class_set,
        )
    columns: list[list[Any]] = [[] for _ in STATE_COLUMNS]
    for nid in nids:
        state = states[nid]
        for i, c in enumerate(STATE_COLUMNS):
            value = state[c]
            if c == "detections" and value is not None:
                value = orjson.dumps(value).decode()
            columns[i].append(value)
    await conn.execute(_UPDATE_ROWS, nids, *columns)
    return events


async def write_batch(
    conn: asyncpg.Connection, records: list[Record], settings: VmsSettings, now: datetime
) -> list[dict[str, Any]]:
    """Everything of one batch; the caller owns the transaction."""
    await copy_records(conn, records)
    return await update_node_state(conn, records, settings, now)
