"""POST /deployments/bulk at COPY speed: the optimizer writes tens of thousands of changes at
once (a cold start, a new version rolled out fleet-wide).

The rows a batch needs are read in a few set-based queries (the changed deployments locked in
id order, the AI packages and edges named, the running deployments of the edges concerned);
the operations are then checked and applied one after the other on that in-memory view, with
the checks and messages of the one-by-one routes (services.setup.deployments.service), so that
the first failure names ``operations[i]`` and nothing is written; the result is written with
one COPY of the new deployments and one COPY into a temporary table followed by one
``UPDATE ... FROM`` of the changed ones, in the request's transaction. Postgres's constraints
(the unique running filename per edge, the foreign keys) still hold the last word against a
concurrent writer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.deployments.schemas import (
    BulkRequest,
    BulkResult,
    CreateOp,
    EdgeStatusOp,
    RemoveOp,
    UpdateOp,
)
from shared.contracts.fleet import DesiredState, ObservedState, PackageStatus
from shared.db import driver_connection, translate_db_error, utcnow
from shared.errors import Conflict, DomainError, Invalid, NotFound

DEPLOYABLE = (PackageStatus.UPLOADED, PackageStatus.BUILDING, PackageStatus.READY)
_RUNNING, _REMOVED = DesiredState.RUNNING.value, DesiredState.REMOVED.value

# The columns a new deployment is written with (every column of setup.deployments).
NEW_COLUMNS = (
    "id",
    "edge_id",
    "ai_id",
    "filename",
    "desired",
    "params",
    "allow_multiple",
    "generation",
    "observed",
    "observed_reason",
    "observed_at",
    "observed_generation",
    "restarts",
    "requested_by",
    "decision_id",
    "created_at",
    "updated_at",
)
# What an update or a removal changes.
CHANGED_COLUMNS = (
    "id",
    "ai_id",
    "filename",
    "desired",
    "params",
    "generation",
    "observed",
    "observed_reason",
    "requested_by",
    "decision_id",
)
_CHANGES_TABLE = """
    CREATE TEMP TABLE IF NOT EXISTS bulk_deployment_changes (
        id int PRIMARY KEY, ai_id int, filename text, desired text, params text,
        generation int, observed text, observed_reason text, requested_by text,
        decision_id text
    ) ON COMMIT DELETE ROWS"""
_APPLY_CHANGES = """
    UPDATE setup.deployments AS d
       SET ai_id = c.ai_id, filename = c.filename, desired = c.desired,
           params = c.params::json, generation = c.generation, observed = c.observed,
           observed_reason = c.observed_reason, requested_by = c.requested_by,
           decision_id = c.decision_id, updated_at = $1
      FROM bulk_deployment_changes AS c
     WHERE d.id = c.id"""


@dataclass(slots=True)
class Row:
    """One deployment as the batch sees it."""

    id: int
    edge_id: int
    ai_id: int
    filename: str
    desired: str
    params: Any
    allow_multiple: bool
    generation: int
    observed: str
    observed_reason: str | None
    requested_by: str
    decision_id: str | None


class _View:
    """The rows the batch reads and changes, and the running single-filename deployments per
    (edge, filename) (what the unique index guards)."""

    def __init__(
        self,
        rows: dict[int, Row],
        packages: dict[int, tuple[str, str]],
        edges: set[int],
        running: dict[tuple[int, str], set[int]],
        new_ids: list[int],
    ):
        self.rows = rows
        self.packages = packages  # id -> (filename, status)
        self.edges = edges
        self.running = running
        self.new_ids = new_ids
        self.created: list[int] = []
        self.changed: set[int] = set()
        self.edge_status: dict[int, str] = {}

    def deployable(self, ai_id: int, field: str) -> str:
        found = self.packages.get(ai_id)
        if found is None:
            raise NotFound(f"AI package {ai_id} does not exist", field=field)
        filename, status = found
        if status not in DEPLOYABLE:
            raise Invalid(f"AI {ai_id} is {status} and cannot be deployed", field=field)
        return filename

    def check_single(self, edge_id: int, filename: str, except_id: int | None = None) -> None:
        clash = sorted(self.running.get((edge_id, filename), set()) - {except_id})
        if clash:
            raise Conflict(
                f"edge {edge_id} already runs an AI named {filename} (deployment {clash[0]}); "
                "update that deployment, remove it first, or set allow_multiple",
                field="ai_id",
            )

    def _unlist(self, row: Row) -> None:
        if row.desired == _RUNNING and not row.allow_multiple:
            self.running.get((row.edge_id, row.filename), set()).discard(row.id)

    def _list(self, row: Row) -> None:
        if row.desired == _RUNNING and not row.allow_multiple:
            self.running.setdefault((row.edge_id, row.filename), set()).add(row.id)

    def locked(self, deployment_id: int, field: str) -> Row:
        row = self.rows.get(deployment_id)
        if row is None:
            raise NotFound(f"deployment {deployment_id} does not exist", field=field)
        return row

    def create(self, op: CreateOp, requested_by: str, prefix: str) -> Row:
        if op.edge_id not in self.edges:
            raise NotFound(f"edge {op.edge_id} does not exist", field=f"{prefix}edge_id")
        filename = self.deployable(op.ai_id, f"{prefix}ai_id")
        if not op.allow_multiple:
            self.check_single(op.edge_id, filename)
        row = Row(
            id=self.new_ids[len(self.created)],
            edge_id=op.edge_id,
            ai_id=op.ai_id,
            filename=filename,
            desired=_RUNNING,
            params=op.params,
            allow_multiple=op.allow_multiple,
            generation=1,
            observed=ObservedState.PENDING.value,
            observed_reason=None,
            requested_by=requested_by,
            decision_id=op.decision_id,
        )
        self.rows[row.id] = row
        self.created.append(row.id)
        self._list(row)
        return row

    def update(self, op: UpdateOp, requested_by: str, prefix: str) -> Row:
        row = self.locked(op.id, f"{prefix}id")
        if row.desired != _RUNNING:
            raise Conflict(f"deployment {op.id} is removed", field=f"{prefix}id")
        if op.expected_generation is not None and row.generation != op.expected_generation:
            raise Conflict(
                f"deployment {op.id} is at generation {row.generation}, "
                f"not {op.expected_generation}",
                field=f"{prefix}expected_generation",
            )
        new = replace(row)
        changed = bool(op.redeploy)
        if op.ai_id is not None and op.ai_id != row.ai_id:
            filename = self.deployable(op.ai_id, f"{prefix}ai_id")
            if filename != row.filename and not row.allow_multiple:
                self.check_single(row.edge_id, filename, except_id=row.id)
            new.ai_id, new.filename = op.ai_id, filename
            changed = True
        if op.params is not None and op.params != row.params:
            new.params = op.params
            changed = True
        if changed:
            new.generation += 1
            new.observed = ObservedState.PENDING.value
            new.observed_reason = None
            new.requested_by = requested_by
            new.decision_id = op.decision_id
            self._put(row, new)
        return new

    def remove(self, op: RemoveOp, requested_by: str, prefix: str) -> Row:
        row = self.locked(op.id, f"{prefix}id")
        if row.desired == _REMOVED:
            return row
        new = replace(
            row,
            desired=_REMOVED,
            generation=row.generation + 1,
            requested_by=requested_by,
            decision_id=op.decision_id,
        )
        self._put(row, new)
        return new

    def _put(self, old: Row, new: Row) -> None:
        self._unlist(old)
        self.rows[new.id] = new
        self._list(new)
        if new.id not in self.created:
            self.changed.add(new.id)


@dataclass(slots=True)
class Applied:
    """A batch's results, in its operations' order, and the edges it concerns (each result's
    deployment's edge, or the edge of an edge status): whose masters to nudge."""

    results: list[BulkResult]
    edge_ids: set[int]


async def apply_bulk(session: AsyncSession, data: BulkRequest) -> Applied:
    """Every operation in one transaction; the first failure names ``operations[i]`` and writes
    nothing."""
    conn = await driver_connection(session)
    try:
        view = await _read_view(conn, data)
        results = _plan(view, data)
        await _write(conn, view, utcnow())
    except asyncpg.PostgresError as exc:
        translated = translate_db_error(_integrity(exc))
        if translated is exc:
            raise
        raise translated from exc
    rows = view.rows
    edges = {r.id if r.op == "edge_status" else rows[r.id].edge_id for r in results}
    return Applied(results, edges)


def _plan(view: _View, data: BulkRequest) -> list[BulkResult]:
    results: list[BulkResult] = []
    for index, op in enumerate(data.operations):
        prefix = f"operations[{index}]."
        try:
            if isinstance(op, CreateOp):
                row = view.create(op, data.requested_by, prefix)
            elif isinstance(op, UpdateOp):
                row = view.update(op, data.requested_by, prefix)
            elif isinstance(op, RemoveOp):
                row = view.remove(op, data.requested_by, prefix)
            else:
                if op.edge_id not in view.edges:
                    raise NotFound(f"edge {op.edge_id} does not exist", field=f"{prefix}edge_id")
                view.edge_status[op.edge_id] = op.status.value
                results.append(BulkResult(index=index, op=op.op, id=op.edge_id))
                continue
        except DomainError as exc:
            if exc.field and not exc.field.startswith("operations["):
                exc.field = prefix + exc.field
            exc.message = f"operations[{index}] ({op.op}): {exc.message}"
            raise
        results.append(BulkResult(index=index, op=op.op, id=row.id, generation=row.generation))
    return results


async def _read_view(conn: asyncpg.Connection, data: BulkRequest) -> _View:
    ops = data.operations
    changed_ids = sorted({op.id for op in ops if isinstance(op, (UpdateOp, RemoveOp))})
    # Lock every row the batch changes up front, in id order: two batches touching the same
    # deployments queue behind each other instead of deadlocking.
    records = await conn.fetch(
        """SELECT id, edge_id, ai_id, filename, desired, params::text AS params, allow_multiple,
                  generation, observed, observed_reason, requested_by, decision_id
             FROM setup.deployments WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE""",
        changed_ids,
    )
    rows = {
        r["id"]: Row(**{**dict(r.items()), "params": orjson.loads(r["params"] or "null")})
        for r in records
    }
    ai_ids = sorted({op.ai_id for op in ops if isinstance(op, (CreateOp, UpdateOp)) and op.ai_id})
    packages = {
        r["id"]: (r["filename"], r["status"])
        for r in await conn.fetch(
            "SELECT id, filename, status FROM setup.ai_packages WHERE id = ANY($1::int[])", ai_ids
        )
    }
    named_edges = {op.edge_id for op in ops if isinstance(op, (CreateOp, EdgeStatusOp))}
    edges = {
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM setup.edges WHERE id = ANY($1::int[])", sorted(named_edges)
        )
    }
    concerned = sorted(edges | {row.edge_id for row in rows.values()})
    running: dict[tuple[int, str], set[int]] = {}
    for r in await conn.fetch(
        """SELECT id, edge_id, filename FROM setup.deployments
            WHERE edge_id = ANY($1::int[]) AND desired = 'running' AND NOT allow_multiple""",
        concerned,
    ):
        running.setdefault((r["edge_id"], r["filename"]), set()).add(r["id"])
    creates = sum(1 for op in ops if isinstance(op, CreateOp))
    new_ids = (
        [
            r[0]
            for r in await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('setup.deployments', 'id'))"
                " FROM generate_series(1, $1)",
                creates,
            )
        ]
        if creates
        else []
    )
    return _View(rows, packages, edges, running, new_ids)


def _params(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def _write(conn: asyncpg.Connection, view: _View, now: datetime) -> None:
    # Removals and filename changes first: a new deployment may take the place they free.
    if view.changed:
        await conn.execute(_CHANGES_TABLE)
        await conn.copy_records_to_table(
            "bulk_deployment_changes",
            records=[
                (
                    r.id,
                    r.ai_id,
                    r.filename,
                    r.desired,
                    _params(r.params),
                    r.generation,
                    r.observed,
                    r.observed_reason,
                    r.requested_by,
                    r.decision_id,
                )
                for r in (view.rows[i] for i in sorted(view.changed))
            ],
            columns=CHANGED_COLUMNS,
        )
        await conn.execute(_APPLY_CHANGES, now)
    if view.created:
        await conn.copy_records_to_table(
            "deployments",
            schema_name="setup",
            records=[
                (
                    r.id,
                    r.edge_id,
                    r.ai_id,
                    r.filename,
                    r.desired,
                    _params(r.params),
                    r.allow_multiple,
                    r.generation,
                    r.observed,
                    r.observed_reason,
                    None,
                    0,
                    0,
                    r.requested_by,
                    r.decision_id,
                    now,
                    now,
                )
                for r in (view.rows[i] for i in view.created)
            ],
            columns=NEW_COLUMNS,
        )
    if view.edge_status:
        await conn.execute(
            """UPDATE setup.edges AS e SET status = s.status, updated_at = $3
                 FROM unnest($1::int[], $2::text[]) AS s(id, status) WHERE e.id = s.id""",
            list(view.edge_status),
            list(view.edge_status.values()),
            now,
        )


def _integrity(exc: Exception) -> Exception:
    """asyncpg's constraint violation as SQLAlchemy's (what translate_db_error reads)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(None, None, exc)
    return exc
