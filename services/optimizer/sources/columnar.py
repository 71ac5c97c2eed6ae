"""The Arrow forms of setup's snapshot and the VMS's node states (shared.contracts.columnar) as
the mirror's objects, column by column: each column is turned into one Python list at C speed
and the objects are made by zipping the lists (no per-row dict, no JSON parse); low-cardinality
text columns share one string object per distinct value; derived values (a node's share of
frames sent up) are computed over whole columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from services.optimizer.model.state import (
    Deployment,
    Edge,
    FleetRead,
    Node,
    NodesRead,
    Package,
    parse_ts,
)
from shared.contracts import columnar


def _values(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def _times(table: pa.Table, name: str) -> list[datetime | None]:
    """A timestamp column as aware datetimes (UTC). Through numpy: pyarrow's own conversion
    makes a time zone object per value (seconds for a whole fleet)."""
    naive = table.column(name).to_numpy().tolist()  # microseconds; null -> None
    return [None if t is None else t.replace(tzinfo=UTC) for t in naive]


def _shared(table: pa.Table, name: str) -> list[Any]:
    """A text column whose few distinct values repeat (states, filenames, conditions): one
    string object per distinct value."""
    encoded = pc.dictionary_encode(table.column(name)).combine_chunks()
    words = encoded.dictionary.to_pylist()
    words.append(None)
    nulls = len(words) - 1
    indices = pc.fill_null(encoded.indices, nulls).to_pylist()
    return [words[i] for i in indices]


def _params(texts: list[str | None]) -> list[dict[str, Any] | None]:
    return [{} if t == "{}" else (orjson.loads(t) if t is not None else None) for t in texts]


def fleet_read(body: bytes) -> FleetRead:
    """GET /fleet/snapshot's Arrow form as a FleetRead."""
    tables, meta = columnar.decode(body)
    e = tables["edges"]
    edges = list(
        map(
            Edge,
            _values(e, "id"),
            _values(e, "name"),
            _values(e, "nid"),
            _values(e, "cluster_id"),
            _values(e, "latitude"),
            _values(e, "longitude"),
            _values(e, "supports_analysis"),
            _shared(e, "status"),
        )
    )
    a = tables["ai_packages"]
    packages = list(
        map(
            Package,
            _values(a, "id"),
            _values(a, "filename"),
            _values(a, "version"),
            _values(a, "version_key"),
            _values(a, "ai_class"),
            _values(a, "condition"),
            _values(a, "status"),
        )
    )
    d = tables["deployments"]
    deployments = list(
        map(
            Deployment,
            _values(d, "id"),
            _values(d, "edge_id"),
            _values(d, "ai_id"),
            _shared(d, "filename"),
            _shared(d, "desired"),
            _params(_values(d, "params")),
            _values(d, "allow_multiple"),
            _values(d, "generation"),
            _shared(d, "observed"),
            _values(d, "observed_generation"),
            _values(d, "restarts"),
            _values(d, "decision_id"),
            _values(d, "observed_reason"),
        )
    )
    ids = tables.get("edge_ids")
    return FleetRead(
        edges=edges,
        packages=packages,
        deployments=deployments,
        ai_classes=dict(meta["conditions"]["ai_classes"]),
        silent_clusters=set(meta.get("silent_cluster_ids") or ()),
        generated_at=parse_ts(meta["generated_at"]),
        edge_ids=_values(ids, "id") if ids is not None else None,
    )


def nodes_read(body: bytes) -> NodesRead:
    """GET /nodes/state's Arrow form as a NodesRead."""
    tables, meta = columnar.decode(body)
    n = tables["nodes"]
    frames = n.column("frames")
    sent = pc.fill_null(n.column("frames_sent_up"), 0.0)
    has_frames = pc.fill_null(pc.not_equal(frames, 0.0), False)
    share = pc.if_else(has_frames, pc.divide(sent, frames), pa.scalar(None, pa.float64()))
    nodes = list(
        map(
            Node,
            _values(n, "nid"),
            _shared(n, "condition"),
            _values(n, "streak"),
            _values(n, "cpu_avg"),
            _values(n, "memory_avg"),
            _values(n, "low_confidence_share"),
            share.to_pylist(),
            _times(n, "last_seen"),
            _values(n, "stale"),
            _values(n, "analysed_by"),
            _values(n, "source_unavailable"),
            _values(n, "analysis_unavailable"),
        )
    )
    return NodesRead(nodes=nodes, generated_at=parse_ts(meta["generated_at"]))
