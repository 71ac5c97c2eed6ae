"""The optimizer's two big reads in a compact binary columnar form: Arrow IPC streams.

Setup's ``GET /fleet/snapshot`` and the VMS's ``GET /nodes/state`` answer in this form when the
request says ``Accept: application/vnd.apache.arrow.stream`` (JSON stays the default). A body
is a sequence of Arrow IPC streams, one per table, each schema naming its table in the metadata
key ``table``; the first stream's schema also carries the answer's scalars as JSON text under
``meta`` (``generated_at``, the condition mapping...).

- the fleet snapshot: ``edges``, ``ai_packages``, ``deployments`` and, in ``since=`` answers,
  ``edge_ids`` (every current edge id); ``meta``: ``conditions``, ``generated_at``,
  ``silent_cluster_ids``;
- the node states: ``nodes``; ``meta``: ``generated_at``, ``stale_after_s``, ``conditions``.

The columns are those of the JSON rows (:mod:`shared.contracts.fleet`,
:mod:`shared.contracts.nodes`), times as timestamps (microseconds, UTC), a deployment's
``params`` as JSON text; a node's nested ``usage`` and ``detections`` are flattened into
columns (``usage_at``, ``cpu_avg``, ``detections_at``, ``frames``, ``analysed_by``...), the
detection summary's own fields kept whole as JSON text in ``detections``.

``?columns=a,b,...`` (Arrow form only) asks for only those columns: each table keeps the ones
named, in its schema's order (:func:`only`); a name no table has is refused. A whole read costs
the services (Postgres, the transfer) and the reader per column: the optimizer asks for the
columns it reads (``SNAPSHOT_READ``, ``NODES_READ``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"

TIME = pa.timestamp("us", tz="UTC")

EDGES = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("nid", pa.string()),
        ("cluster_id", pa.int64()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("supports_analysis", pa.bool_()),
        ("status", pa.string()),
        ("capacity_cpu", pa.float64()),
        ("capacity_memory_mb", pa.int64()),
        ("capacity_gpu", pa.int64()),
        ("node_name", pa.string()),
        ("agent_url", pa.string()),
        ("master_silent", pa.bool_()),
    ]
)
AI_PACKAGES = pa.schema(
    [
        ("id", pa.int64()),
        ("filename", pa.string()),
        ("version", pa.string()),
        ("version_key", pa.string()),
        ("ai_class", pa.string()),
        ("condition", pa.string()),
        ("status", pa.string()),
        ("package_digest", pa.string()),
        ("image_ref", pa.string()),
    ]
)
DEPLOYMENTS = pa.schema(
    [
        ("id", pa.int64()),
        ("edge_id", pa.int64()),
        ("ai_id", pa.int64()),
        ("filename", pa.string()),
        ("desired", pa.string()),
        ("params", pa.string()),  # JSON text
        ("allow_multiple", pa.bool_()),
        ("generation", pa.int64()),
        ("observed", pa.string()),
        ("observed_reason", pa.string()),
        ("observed_at", TIME),
        ("observed_generation", pa.int64()),
        ("restarts", pa.int64()),
        ("requested_by", pa.string()),
        ("decision_id", pa.string()),
    ]
)
EDGE_IDS = pa.schema([("id", pa.int64())])
NODES = pa.schema(
    [
        ("nid", pa.string()),
        ("known", pa.bool_()),
        ("authenticated", pa.bool_()),
        ("condition", pa.string()),
        ("condition_code", pa.string()),
        ("previous_condition", pa.string()),
        ("streak", pa.int64()),
        ("condition_since", TIME),
        ("environment_at", TIME),
        ("last_seen", TIME),
        ("stale", pa.bool_()),
        ("usage_at", TIME),  # null: no usage report yet (the JSON's usage is null)
        ("cpu", pa.float64()),
        ("memory", pa.float64()),
        ("func", pa.string()),
        ("cpu_avg", pa.float64()),
        ("memory_avg", pa.float64()),
        ("detections_at", TIME),  # null: no detection summary yet (the JSON's detections is null)
        ("detections", pa.string()),  # the summary's own fields, JSON text
        ("frames", pa.float64()),
        ("frames_sent_up", pa.float64()),
        ("low_confidence_share", pa.float64()),
        ("analysed_by", pa.string()),
        ("source_unavailable", pa.string()),
        ("analysis_unavailable", pa.string()),
    ]
)

# The columns the optimizer reads (services.optimizer.sources.columnar).
SNAPSHOT_READ = (
    "id",
    "name",
    "nid",
    "cluster_id",
    "latitude",
    "longitude",
    "supports_analysis",
    "status",
    "filename",
    "version",
    "version_key",
    "ai_class",
    "condition",
    "edge_id",
    "ai_id",
    "desired",
    "params",
    "allow_multiple",
    "generation",
    "observed",
    "observed_generation",
    "restarts",
    "decision_id",
    "observed_reason",
)
NODES_READ = (
    "nid",
    "condition",
    "streak",
    "cpu_avg",
    "memory_avg",
    "low_confidence_share",
    "frames",
    "frames_sent_up",
    "last_seen",
    "stale",
    "analysed_by",
    "source_unavailable",
    "analysis_unavailable",
)

SNAPSHOT_TABLES = {
    "edges": EDGES,
    "ai_packages": AI_PACKAGES,
    "deployments": DEPLOYMENTS,
    "edge_ids": EDGE_IDS,
}
NODE_TABLES = {"nodes": NODES}


def wants_arrow(accept: str | None) -> bool:
    """Whether an Accept header asks for the Arrow form."""
    return accept is not None and ARROW_STREAM in accept.lower()


def columns_asked(value: str | None, tables: dict[str, pa.Schema]) -> frozenset[str] | None:
    """The ``columns`` query parameter as a set of names (None: every column). Raises
    ValueError naming the first column no table has."""
    if value is None:
        return None
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    known = {f.name for schema in tables.values() for f in schema}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(f"unknown column {unknown[0]!r}")
    return names


def only(schema: pa.Schema, names: frozenset[str] | None) -> pa.Schema:
    """The schema's fields that are in ``names`` (all of them when None), in its order."""
    if names is None:
        return schema
    return pa.schema([f for f in schema if f.name in names])


def encode(tables: list[tuple[str, pa.Table]], meta: dict[str, Any]) -> bytes:
    """The body: one IPC stream per table, in order; ``meta`` on the first one."""
    sink = pa.BufferOutputStream()
    for i, (name, table) in enumerate(tables):
        metadata = {b"table": name.encode()}
        if i == 0:
            metadata[b"meta"] = orjson.dumps(meta)
        with pa.ipc.new_stream(sink, table.schema.with_metadata(metadata)) as writer:
            writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode(body: bytes) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """The tables of a body by name, and its ``meta``."""
    source = pa.BufferReader(body)
    tables: dict[str, pa.Table] = {}
    meta: dict[str, Any] = {}
    while source.tell() < len(body):
        reader = pa.ipc.open_stream(source)
        table = reader.read_all()
        metadata = reader.schema.metadata or {}
        if b"meta" in metadata:
            meta = orjson.loads(metadata[b"meta"])
        tables[metadata[b"table"].decode()] = table
    return tables, meta


def openapi_content(json_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A 200 answer's ``content`` in an OpenAPI document: JSON and the Arrow form."""
    return {
        "application/json": {"schema": json_schema or {"type": "object"}},
        ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
    }
