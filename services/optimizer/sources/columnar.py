"""The Arrow forms of setup's snapshot and the VMS's node states (shared.contracts.columnar) as
the mirror's objects, column by column: each column is turned into one Python list at C speed
and the objects are made by zipping the lists (no per-row dict, no JSON parse); low-cardinality
text columns share one string object per distinct value; derived values (a node's share of
frames sent up) are computed over whole columns. Beside the objects, a read carries the few
columns the mirror keeps as numpy arrays (model.columns.ReadArrays), taken from the Arrow
columns without a Python object per row, so that a whole read fills the mirror's columns with
array operations."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from services.optimizer.model.columns import Coded, DeploymentArrays, EdgeArrays, NodeArrays
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
from shared.contracts.fleet import DesiredState, EdgeStatus


def _values(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def _times(table: pa.Table, name: str) -> list[datetime | None]:
    """A timestamp column as aware datetimes (UTC), made from POSIX seconds: pyarrow's own
    conversion makes a time zone object per value (seconds for a whole fleet), and a naive
    datetime made aware is two objects. Exact: microseconds below 2**53 are exact floats, and
    before the year 2106 their quotient by 10**6 is within 0.24 µs of the true value, which
    ``fromtimestamp`` rounds to the microsecond."""
    micros = pc.cast(pc.cast(table.column(name), pa.int64()), pa.float64())
    seconds = pc.divide(micros, 1e6).to_pylist()  # null -> None
    return [None if t is None else datetime.fromtimestamp(t, UTC) for t in seconds]


def _coded(table: pa.Table, name: str) -> Coded:
    """A text column whose few distinct values repeat (states, filenames, conditions), as its
    words and one index per row."""
    encoded = pc.dictionary_encode(table.column(name)).combine_chunks()
    index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return Coded(encoded.dictionary.to_pylist(), index)


def _shared(coded: Coded) -> list[Any]:
    """A coded column as a list with one string object per distinct value."""
    words: list[str | None] = [*coded.words, None]  # index -1: null
    return [words[i] for i in coded.index.tolist()]


def _array(table: pa.Table, name: str, fill: Any) -> np.ndarray:
    """A number or boolean column as a numpy array, null as ``fill``."""
    return pc.fill_null(table.column(name), fill).to_numpy(zero_copy_only=False)


def _equals(table: pa.Table, name: str, word: str) -> np.ndarray:
    return pc.fill_null(pc.equal(table.column(name), word), False).to_numpy(zero_copy_only=False)


def _seconds(table: pa.Table, name: str) -> np.ndarray:
    """A timestamp column as POSIX seconds, null as NaN."""
    micros = pc.cast(pc.cast(table.column(name), pa.int64()), pa.float64())
    seconds: np.ndarray = pc.fill_null(micros, math.nan).to_numpy(zero_copy_only=False) / 1e6
    return seconds


def _params(texts: list[str | None]) -> list[dict[str, Any] | None]:
    return [{} if t == "{}" else (orjson.loads(t) if t is not None else None) for t in texts]


def fleet_read(body: bytes) -> FleetRead:
    """GET /fleet/snapshot's Arrow form as a FleetRead."""
    tables, meta = columnar.decode(body)
    e = tables["edges"]
    status = _coded(e, "status")
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
            _shared(status),
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
    filename, observed = _coded(d, "filename"), _coded(d, "observed")
    deployments = list(
        map(
            Deployment,
            _values(d, "id"),
            _values(d, "edge_id"),
            _values(d, "ai_id"),
            _shared(filename),
            _shared(_coded(d, "desired")),
            _params(_values(d, "params")),
            _values(d, "allow_multiple"),
            _values(d, "generation"),
            _shared(observed),
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
        edge_arrays=EdgeArrays(
            id=_array(e, "id", 0).astype(np.int64),
            degraded=_equals(e, "status", EdgeStatus.DEGRADED),
        ),
        deployment_arrays=DeploymentArrays(
            id=_array(d, "id", 0).astype(np.int64),
            edge_id=_array(d, "edge_id", 0).astype(np.int64),
            ai_id=_array(d, "ai_id", 0).astype(np.int64),
            running=_equals(d, "desired", DesiredState.RUNNING),
            filename=filename,
            observed=observed,
            restarts=_array(d, "restarts", 0).astype(np.int64),
        ),
    )


def nodes_read(body: bytes) -> NodesRead:
    """GET /nodes/state's Arrow form as a NodesRead."""
    tables, meta = columnar.decode(body)
    n = tables["nodes"]
    frames = n.column("frames")
    sent = pc.fill_null(n.column("frames_sent_up"), 0.0)
    has_frames = pc.fill_null(pc.not_equal(frames, 0.0), False)
    share = pc.if_else(has_frames, pc.divide(sent, frames), pa.scalar(None, pa.float64()))
    nids = _values(n, "nid")
    condition = _coded(n, "condition")
    nodes = list(
        map(
            Node,
            nids,
            _shared(condition),
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
    arrays = NodeArrays(
        nids=nids,
        stale=_array(n, "stale", False),
        cpu=_array(n, "cpu_avg", math.nan),
        memory=_array(n, "memory_avg", math.nan),
        low_confidence=_array(n, "low_confidence_share", math.nan),
        seen=_seconds(n, "last_seen"),
        condition=condition,
    )
    return NodesRead(nodes=nodes, generated_at=parse_ts(meta["generated_at"]), arrays=arrays)
