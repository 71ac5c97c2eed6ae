"""One batch, one transaction: insert the observations and upsert node_state, atomically.

A batch of up to COPY_FROM_RECORDS records is ONE statement (observations as JSON, and the upsert),
which runs in its own implicit transaction: one round trip, no BEGIN/COMMIT, nothing half-written.
Larger batches COPY the observations and run the upsert in one transaction. The node_state upsert
(ON CONFLICT DO UPDATE) computes each node's new state from its locked, latest row and the batch's
summary (nodes.state), which keeps several concurrent writers correct. Rows are proposed in nid
order so that concurrent writers lock them in the same order (no deadlocks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.vms.nodes.state import NodeBatch, events_for_detections
from services.vms.records import KIND_OF, RECORD_TYPES, ROW_OF, Record, columns, pg_types
from services.vms.settings import VmsSettings
from shared.contracts.events import Event, EventType

# Each table's columns and their Postgres types, in order: from the record classes.
KINDS = ("usage", "environment", "detections")
COLUMNS: dict[str, tuple[str, ...]] = {kind: columns(RECORD_TYPES[kind]) for kind in KINDS}
TYPES: dict[str, tuple[str, ...]] = {kind: pg_types(RECORD_TYPES[kind]) for kind in KINDS}
# COPY sends the detections' JSON columns as text.
_JSON_COLUMNS = tuple(i for i, t in enumerate(TYPES["detections"]) if t == "jsonb")

# The proposed node_state row: the state of a node seen for the first time, and the batch's
# summary for a node that has a row already.
STATE_COLUMNS = (
    ("nid", "text"),
    ("known", "bool"),
    ("authenticated", "bool"),
    ("last_seen", "timestamptz"),
    ("usage_at", "timestamptz"),
    ("cpu", "float8"),
    ("memory", "float8"),
    ("func", "text"),
    ("cpu_avg", "float8"),
    ("memory_avg", "float8"),
    ("environment_at", "timestamptz"),
    ("condition", "text"),
    ("condition_code", "text"),
    ("streak", "int4"),
    ("condition_since", "timestamptz"),
    ("previous_condition", "text"),
    ("detections_at", "timestamptz"),
    ("detections", "jsonb"),
    ("low_confidence_share", "float8"),
    ("batch_aux", "jsonb"),
)


def _build_sql(with_observations: bool) -> str:
    params = iter(range(1, 1000))
    parts = []
    for kind in KINDS if with_observations else ():
        # The rows travel as one JSON array of arrays: far cheaper to encode than one typed array
        # per column, and parsed once (jsonb) by Postgres.
        cols = ", ".join(COLUMNS[kind])
        casts = ", ".join(
            f"(e->{i})::jsonb" if t == "jsonb" else f"(e->>{i})::{t}"
            for i, t in enumerate(TYPES[kind])
        )
        parts.append(
            f"ins_{kind} AS (INSERT INTO vms.{kind} ({cols}) SELECT {casts} "
            f"FROM jsonb_array_elements(${next(params)}::jsonb) AS e)"
        )
    state_cols = ", ".join(c for c, _ in STATE_COLUMNS)
    # The proposed rows travel as one JSON array of arrays too (one typed array per column costs
    # the client a type check per element); a JSON null is SQL NULL in every column.
    state_casts = ", ".join(
        f"NULLIF(e->{i}, 'null'::jsonb) AS {c}" if t == "jsonb" else f"(e->>{i})::{t} AS {c}"
        for i, (c, t) in enumerate(STATE_COLUMNS)
    )
    state_rows = f"SELECT {state_casts} FROM jsonb_array_elements(${next(params)}::jsonb) AS e"
    threshold = f"${next(params)}::float8"
    aux = "(excluded.batch_aux->>'{}')::float8"
    usage_new = (
        "excluded.usage_at IS NOT NULL AND (n.usage_at IS NULL OR excluded.usage_at >= n.usage_at)"
    )
    env_new = (
        "excluded.environment_at IS NOT NULL AND (n.environment_at "
        "IS NULL OR excluded.environment_at > n.environment_at)"
    )
    cond_new = f"({env_new} AND excluded.condition IS NOT NULL)"
    same_run = (
        "((excluded.batch_aux->>'all_same')::bool AND "
        "n.condition IS NOT DISTINCT FROM excluded.condition)"
    )
    det_new = (
        "excluded.detections_at IS NOT NULL AND (n.detections_at "
        "IS NULL OR excluded.detections_at >= n.detections_at)"
    )

    def keep_unless(cond: str, col: str) -> str:
        return f"{col} = CASE WHEN {cond} THEN excluded.{col} ELSE n.{col} END"

    def avg(col: str, cond: str, name: str) -> str:
        return (
            f"{col} = CASE WHEN NOT ({cond}) OR excluded.{col} IS NULL "
            f"THEN n.{col} WHEN n.{col} IS NULL THEN excluded.{col} "
            f"ELSE n.{col} * {aux.format(name + '_decay')} + {aux.format(name + '_contrib')} END"
        )

    sets = [
        "known = excluded.known",
        "authenticated = excluded.authenticated",
        "last_seen = excluded.last_seen",
        "updated_at = now()",
        "batch_aux = excluded.batch_aux",
        keep_unless(usage_new, "usage_at"),
        keep_unless(usage_new, "cpu"),
        keep_unless(usage_new, "memory"),
        keep_unless(usage_new, "func"),
        avg("cpu_avg", usage_new, "cpu"),
        avg("memory_avg", usage_new, "memory"),
        keep_unless(env_new, "environment_at"),
        keep_unless(cond_new, "condition"),
        keep_unless(cond_new, "condition_code"),
        f"streak = CASE WHEN NOT {cond_new} THEN n.streak WHEN {same_run} "
        "THEN n.streak + excluded.streak ELSE excluded.streak END",
        f"condition_since = CASE WHEN NOT {cond_new} OR {same_run} "
        "THEN n.condition_since ELSE excluded.condition_since END",
        f"previous_condition = CASE WHEN NOT {cond_new} OR {same_run} THEN n.previous_condition "
        "WHEN (excluded.batch_aux->>'all_same')::bool THEN "
        "n.condition ELSE excluded.previous_condition END",
        f"condition_changed_at = CASE WHEN {cond_new} AND NOT "
        f"{same_run} THEN now() ELSE n.condition_changed_at END",
        keep_unless(det_new, "detections_at"),
        keep_unless(det_new, "detections"),
        avg("low_confidence_share", det_new, "lc"),
    ]
    upsert = (
        "state AS (INSERT INTO vms.node_state AS n "
        f"({state_cols}, updated_at, condition_changed_at) "
        f"SELECT s.*, now(), CASE WHEN s.condition IS NOT NULL THEN now() END "
        f"FROM ({state_rows}) AS s ORDER BY s.nid "
        f"ON CONFLICT (nid) DO UPDATE SET {', '.join(sets)} "
        "RETURNING n.nid, n.condition, n.previous_condition, "
        "n.condition_since, n.low_confidence_share, "
        "n.condition_changed_at = now() AS changed)"
    )
    return (
        "WITH "
        + ", ".join([*parts, upsert])
        + f" SELECT * FROM state WHERE changed OR ({threshold} "
        f"> 0 AND low_confidence_share >= {threshold})"
    )


WRITE_SQL = _build_sql(with_observations=True)
STATE_SQL = _build_sql(with_observations=False)
# From this many records on, COPY (in a transaction with the state upsert) beats the single
# statement: its per-record cost is lower, its extra round trips no longer matter.
COPY_FROM_RECORDS = 256


def _aux(node: NodeBatch) -> dict[str, Any]:
    aux: dict[str, Any] = {"all_same": node.all_same}
    for name, e in (
        ("cpu", node.cpu_avg),
        ("memory", node.memory_avg),
        ("lc", node.low_confidence),
    ):
        if e is not None:
            aux[f"{name}_decay"], aux[f"{name}_contrib"] = e.decay, e.contrib
    return aux


def _state_rows(nodes: dict[str, NodeBatch], now: datetime) -> str:
    """The proposed node_state rows (STATE_COLUMNS' order), in nid order, as one JSON array."""
    rows = []
    for nid in sorted(nodes):
        n = nodes[nid]
        rows.append(
            (
                n.nid,
                n.known,
                n.authenticated,
                now,
                n.usage_at,
                n.cpu,
                n.memory,
                n.func,
                n.cpu_avg.fresh if n.cpu_avg else None,
                n.memory_avg.fresh if n.memory_avg else None,
                n.environment_at,
                n.condition,
                n.condition_code,
                n.run,
                n.run_since,
                n.previous,
                n.detections_at,
                n.detections,
                n.low_confidence.fresh if n.low_confidence else None,
                _aux(n),
            )
        )
    return orjson.dumps(rows).decode()


def _observation_rows(grouped: dict[str, list[Record]]) -> list[str]:
    """One JSON array of rows per kind (usage, environment, detections)."""
    return [orjson.dumps(list(map(ROW_OF[kind], grouped.get(kind, ())))).decode() for kind in KINDS]


def _detections_row(row: tuple) -> tuple:
    """COPY sends the detections' JSON columns as text."""
    fields = list(row)
    for i in _JSON_COLUMNS:
        fields[i] = orjson.dumps(fields[i]).decode()
    return tuple(fields)


def by_kind(records: list[Record]) -> dict[str, list[Record]]:
    """The records of each kind (one kind, the common case, without a Python step per record)."""
    kinds = set(map(KIND_OF, records))
    if len(kinds) == 1:
        return {kinds.pop(): records}
    grouped: dict[str, list[Record]] = {}
    for r in records:
        grouped.setdefault(r.kind, []).append(r)
    return grouped


async def _copy(conn: asyncpg.Connection, grouped: dict[str, list[Record]]) -> None:
    for kind in KINDS:
        if kind not in grouped:
            continue
        rows = list(map(ROW_OF[kind], grouped[kind]))  # the rows out in C, no call per record
        if kind == "detections":
            rows = [_detections_row(row) for row in rows]
        await conn.copy_records_to_table(
            kind, records=rows, columns=COLUMNS[kind], schema_name="vms"
        )


async def write_batch(
    conn: asyncpg.Connection,
    records: list[Record],
    nodes: dict[str, NodeBatch],
    settings: VmsSettings,
    now: datetime,
) -> list[Event]:
    """Store ``records`` and update their nodes' state (``nodes``: ``summarize(records)``)
    atomically; return the events it causes.

    Small batches: one statement (one round trip, its own transaction). Large ones: COPY and the
    state upsert in one explicit transaction.
    """
    threshold = settings.low_confidence_share
    grouped = by_kind(records)
    if len(records) < COPY_FROM_RECORDS:
        rows = await conn.fetch(
            WRITE_SQL, *_observation_rows(grouped), _state_rows(nodes, now), threshold
        )
    else:
        async with conn.transaction():
            await _copy(conn, grouped)
            rows = await conn.fetch(STATE_SQL, _state_rows(nodes, now), threshold)
    return _events(rows, nodes, grouped.get("detections", []), settings)


def _events(
    rows: list[asyncpg.Record],
    nodes: dict[str, NodeBatch],
    detections: list[Record],
    settings: VmsSettings,
) -> list[Event]:
    threshold = settings.low_confidence_share
    events: list[Event] = []
    for row in rows:
        if row["changed"]:
            events.append(
                Event(
                    type=EventType.CONDITION_CHANGED,
                    nid=row["nid"],
                    condition=row["condition"],
                    previous=row["previous_condition"],
                    at=row["condition_since"],
                )
            )
        share, lc = row["low_confidence_share"], nodes[row["nid"]].low_confidence
        if threshold > 0 and lc is not None and share is not None and share >= threshold:
            # The share before this batch, recovered from the new one (E' = decay*E + contrib); for
            # a node without a share yet this gives its first sample's share.
            before = (share - lc.contrib) / lc.decay if lc.decay > 0 else 0.0
            if before < threshold:
                events.append(
                    Event(
                        type=EventType.LOW_CONFIDENCE,
                        nid=row["nid"],
                        share=round(share, 4),
                        threshold=threshold,
                        at=nodes[row["nid"]].detections_at,
                    )
                )
    return events + events_for_detections(detections, settings.event_class_set)
