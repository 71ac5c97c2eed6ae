"""The mirror's columns: the few per-edge and per-deployment values the policies test first, as
numpy arrays kept beside the objects (services.optimizer.model.state keeps them in step on every
change), so that a whole-fleet cycle finds the edges a policy must look at with a handful of array
operations, and runs the policy's per-edge Python only on those (the candidates).

A policy's candidates are a superset of the edges it would act on or remember something for: the
per-edge code still makes every decision, so deciding over the candidates equals deciding over
every edge (tests/optimizer/test_candidates.py compares the two on randomized fleets).

Edges and deployments each have a slot (a row); a removed one keeps its row, marked not alive,
until the next whole read builds the columns afresh."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from shared.contracts.fleet import DesiredState, EdgeStatus, ObservedState

if TYPE_CHECKING:
    from services.optimizer.model.state import Deployment, Edge, Node

_RUNNING = DesiredState.RUNNING
_OBSERVED_RUNNING = ObservedState.RUNNING
_DEGRADED = EdgeStatus.DEGRADED
OBSERVED = list(ObservedState)
_OBSERVED_CODE: dict[str, int] = {str(s): i for i, s in enumerate(OBSERVED)}
_OBSERVED_RUNNING_CODE = _OBSERVED_CODE[str(ObservedState.RUNNING)]
NAN = math.nan

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Coded:
    """A text column whose few distinct values repeat: the words, and per row the index of its
    word (-1: null)."""

    words: list[str]
    index: IntArray


@dataclass(slots=True)
class EdgeArrays:
    """The edges of a whole read, in its order, as the columns need them."""

    id: IntArray
    degraded: BoolArray  # status degraded


@dataclass(slots=True)
class DeploymentArrays:
    """The deployments of a whole read, in its order, as the columns need them."""

    id: IntArray
    edge_id: IntArray
    ai_id: IntArray
    running: BoolArray  # desired running
    filename: Coded
    observed: Coded
    restarts: IntArray


@dataclass(slots=True)
class NodeArrays:
    """The nodes of a whole read, in its order (``nids``), as the columns need them; NaN for an
    unknown number."""

    nids: list[str]
    stale: BoolArray
    cpu: FloatArray  # cpu_avg
    memory: FloatArray  # memory_avg
    low_confidence: FloatArray
    seen: FloatArray  # last_seen, POSIX seconds
    condition: Coded


@dataclass(slots=True)
class ReadArrays:
    """A whole read's rows as arrays (from the Arrow answers), beside its objects: the columns
    are filled from these with array operations instead of from the objects."""

    edges: EdgeArrays
    deployments: DeploymentArrays
    nodes: NodeArrays


class Table:
    """Named arrays of one length, grown by doubling; rows found by an integer key."""

    def __init__(self, spec: dict[str, tuple[type, object]]) -> None:
        self.spec = spec
        self.rows: dict[int, int] = {}  # key -> row
        self.size = 0
        self.cols: dict[str, np.ndarray] = {
            name: np.full(16, fill, dtype) for name, (dtype, fill) in spec.items()
        }

    def row(self, key: int) -> int:
        """The key's row, a new one when it has none."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = self.size
            self.size += 1
            capacity = len(next(iter(self.cols.values())))
            if self.size > capacity:
                for name, (dtype, fill) in self.spec.items():
                    grown: np.ndarray = np.full(capacity * 2, fill, dtype)
                    grown[:capacity] = self.cols[name]
                    self.cols[name] = grown
        return row

    def fill(self, keys: list[int], values: Mapping[str, Iterable[object]]) -> None:
        """Every row at once (a whole read): row i is keys[i]."""
        n = len(keys)
        self.rows = dict(zip(keys, range(n), strict=True))
        self.size = n
        for name, (dtype, fill) in self.spec.items():
            col: np.ndarray = np.full(max(16, n), fill, dtype)
            if name in values:
                value = values[name]
                if isinstance(value, np.ndarray | list):
                    col[:n] = value
                else:
                    col[:n] = np.fromiter(value, dtype, n)
            self.cols[name] = col

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name][: self.size]


def _observed_code(state: str) -> int:
    return _OBSERVED_CODE.get(state, -1)


def _is_some(value: object) -> bool:
    return value is not None


def _floats(values: Iterable[float | None]) -> FloatArray:
    """None as NaN."""
    out: FloatArray = np.array(list(values), np.float64)
    return out


def _taken(values: np.ndarray, found: IntArray, has: BoolArray, fill: object) -> np.ndarray:
    """``values`` at the rows ``found`` where ``has`` holds, ``fill`` elsewhere."""
    out = np.full(len(found), fill, values.dtype)
    out[has] = values[found[has]]
    return out


def _f(value: float | None) -> float:
    return NAN if value is None else value


def _ts(node: Node) -> float | None:
    return None if node.last_seen is None else node.last_seen.timestamp()


class FleetColumns:
    """Per edge (with its node's values, read by the edge's nid) and per deployment."""

    EDGE: ClassVar[dict[str, tuple[type, object]]] = {
        "id": (np.int64, 0),
        "alive": (np.bool_, False),
        "degraded": (np.bool_, False),  # status degraded
        "node": (np.bool_, False),  # the VMS reports the edge's node
        "stale": (np.bool_, False),
        "cpu": (np.float64, NAN),  # NaN: unknown
        "memory": (np.float64, NAN),
        "low_confidence": (np.float64, NAN),
        "seen": (np.float64, NAN),  # last_seen, POSIX seconds
        "condition": (np.int64, -1),  # code in ``conditions``; -1: none
        "revision": (np.int64, 0),  # bumped each time the row's node values are written
    }
    DEPLOYMENT: ClassVar[dict[str, tuple[type, object]]] = {
        "alive": (np.bool_, False),  # in the mirror and desired running
        "edge": (np.int64, 0),  # the edge's row
        "ai_id": (np.int64, 0),
        "filename": (np.int64, -1),  # code in ``filenames``
        "helper": (np.bool_, False),  # a helper copy (analysis_for)
        "running": (np.bool_, False),  # observed running
        "observed": (np.int64, -1),  # index in OBSERVED
        "restarts": (np.int64, 0),
    }

    def __init__(self) -> None:
        self.edges = Table(self.EDGE)
        self.deployments = Table(self.DEPLOYMENT)
        self.conditions: dict[str, int] = {}
        self.filenames: dict[str, int] = {}
        # Deployments desired running with params (routes, helper copies, focus): few in a calm
        # fleet; the policies that look at params look only at these.
        self.with_params: set[int] = set()
        self.revision = 0

    def _code(self, vocab: dict[str, int], word: str | None) -> int:
        if word is None:
            return -1
        code = vocab.get(word)
        if code is None:
            code = vocab[word] = len(vocab)
        return code

    # -- whole -------------------------------------------------------------------------------------

    def build(
        self,
        edges: list[Edge],
        nodes: dict[str, Node],
        deployments: list[Deployment],
        arrays: ReadArrays | None = None,
    ) -> None:
        """Every row afresh (a whole read): edges in the order given, their nodes, and the
        deployments. From ``arrays`` (the same rows as columns, straight from an Arrow answer)
        with array operations; otherwise attribute by attribute at C speed (``map`` over
        ``attrgetter``). Python only for the few deployments with params."""
        if arrays is None:
            edge_values = self._edge_values(edges, nodes)
        else:
            edge_values = self._edge_values_of(arrays, edges)
        self.edges.fill(edge_values.pop("keys").tolist(), edge_values)
        rows = self.edges.rows
        if arrays is None:
            dep_values = self._deployment_values(deployments, rows)
        else:
            dep_values = self._deployment_values_of(arrays.deployments, rows)
        running = dep_values["running_desired"]
        params = list(map(attrgetter("params"), deployments))
        with_params = np.fromiter(map(bool, params), np.bool_, len(params)) & running
        self.with_params = {deployments[i].id for i in np.flatnonzero(with_params).tolist()}
        helper = np.zeros(len(deployments), np.bool_)
        for i in np.flatnonzero(with_params).tolist():
            helper[i] = bool(deployments[i].helps)
        self.deployments.fill(
            dep_values["keys"].tolist(),
            {
                "alive": running & dep_values["has_edge"],
                "edge": dep_values["edge"],
                "ai_id": dep_values["ai_id"],
                "filename": dep_values["filename"],
                "helper": helper,
                "running": dep_values["observed"] == _OBSERVED_RUNNING_CODE,
                "observed": dep_values["observed"],
                "restarts": dep_values["restarts"],
            },
        )

    def _edge_values(self, edges: list[Edge], nodes: dict[str, Node]) -> dict[str, np.ndarray]:
        """The edge columns of :meth:`build` from the objects (``keys``: the edge ids)."""
        from services.optimizer.model.state import Node

        n = len(edges)
        empty = Node("", None, 0, None, None, None, None, None, False)
        found = list(map(nodes.get, map(attrgetter("nid"), edges)))
        has_node = np.fromiter(map(_is_some, found), np.bool_, len(found))
        ns = [empty if node is None else node for node in found]
        conditions = self.conditions
        for word in set(map(attrgetter("condition"), ns)):
            self._code(conditions, word)
        codes: dict[str | None, int] = dict(conditions.items())
        codes[None] = -1
        ids = np.fromiter(map(attrgetter("id"), edges), np.int64, n)
        return {
            "keys": ids,
            "id": ids,
            "alive": np.ones(n, np.bool_),
            "degraded": np.fromiter(
                map(_DEGRADED.__eq__, map(attrgetter("status"), edges)), np.bool_, n
            ),
            "node": has_node,
            "stale": np.fromiter(map(bool, map(attrgetter("stale"), ns)), np.bool_, n),
            "cpu": _floats(map(attrgetter("cpu_avg"), ns)),
            "memory": _floats(map(attrgetter("memory_avg"), ns)),
            "low_confidence": _floats(map(attrgetter("low_confidence_share"), ns)),
            "seen": _floats(map(_ts, ns)),
            "condition": np.fromiter(
                map(codes.__getitem__, map(attrgetter("condition"), ns)), np.int64, n
            ),
            "revision": np.full(n, self.revision, np.int64),
        }

    def _edge_values_of(self, arrays: ReadArrays, edges: list[Edge]) -> dict[str, np.ndarray]:
        """The edge columns of :meth:`build` from a read's arrays: each edge's node found by its
        nid in the node arrays' ``nids``, its values taken from there."""
        e, nd = arrays.edges, arrays.nodes
        n = len(e.id)
        index = dict(zip(nd.nids, range(len(nd.nids)), strict=True))
        found = np.fromiter(map(index.get, map(attrgetter("nid"), edges), repeat(-1)), np.int64, n)
        has_node = found >= 0
        at = found[has_node]
        condition = np.full(n, -1, np.int64)
        node_codes = self._codes(self.conditions, nd.condition, used=at)
        condition[has_node] = node_codes[at]
        return {
            "keys": e.id,
            "id": e.id,
            "alive": np.ones(n, np.bool_),
            "degraded": e.degraded,
            "node": has_node,
            "stale": _taken(nd.stale, found, has_node, False),
            "cpu": _taken(nd.cpu, found, has_node, NAN),
            "memory": _taken(nd.memory, found, has_node, NAN),
            "low_confidence": _taken(nd.low_confidence, found, has_node, NAN),
            "seen": _taken(nd.seen, found, has_node, NAN),
            "condition": condition,
            "revision": np.full(n, self.revision, np.int64),
        }

    def _deployment_values(
        self, deployments: list[Deployment], rows: dict[int, int]
    ) -> dict[str, np.ndarray]:
        """The deployment columns of :meth:`build` from the objects (``keys``: the ids)."""
        n = len(deployments)
        filenames = self.filenames
        for word in set(map(attrgetter("filename"), deployments)):
            self._code(filenames, word)
        edge_rows = list(map(rows.get, map(attrgetter("edge_id"), deployments)))
        return {
            "keys": np.fromiter(map(attrgetter("id"), deployments), np.int64, n),
            "running_desired": np.fromiter(
                map(_RUNNING.__eq__, map(attrgetter("desired"), deployments)), np.bool_, n
            ),
            "has_edge": np.fromiter(map(_is_some, edge_rows), np.bool_, n),
            "edge": np.array([0 if r is None else r for r in edge_rows], np.int64),
            "ai_id": np.fromiter(map(attrgetter("ai_id"), deployments), np.int64, n),
            "filename": np.fromiter(
                map(filenames.__getitem__, map(attrgetter("filename"), deployments)), np.int64, n
            ),
            "observed": np.fromiter(
                map(_observed_code, map(attrgetter("observed"), deployments)), np.int64, n
            ),
            "restarts": np.fromiter(map(attrgetter("restarts"), deployments), np.int64, n),
        }

    def _deployment_values_of(
        self, d: DeploymentArrays, rows: dict[int, int]
    ) -> dict[str, np.ndarray]:
        """The deployment columns of :meth:`build` from a read's arrays."""
        n = len(d.id)
        edge = np.fromiter(map(rows.get, d.edge_id.tolist(), repeat(-1)), np.int64, n)
        has_edge = edge >= 0
        observed = np.array([_observed_code(w) for w in d.observed.words] + [-1], np.int64)
        return {
            "keys": d.id,
            "running_desired": d.running,
            "has_edge": has_edge,
            "edge": np.where(has_edge, edge, 0),
            "ai_id": d.ai_id,
            "filename": self._codes(self.filenames, d.filename),
            "observed": observed[d.observed.index],
            "restarts": d.restarts,
        }

    def _codes(self, vocab: dict[str, int], coded: Coded, used: IntArray | None = None) -> IntArray:
        """A coded text column's rows as codes in ``vocab`` (-1: null); the words of the rows
        ``used`` (all rows when None) are added to it."""
        index = coded.index if used is None else coded.index[used]
        for i in np.unique(index[index >= 0]).tolist():
            self._code(vocab, coded.words[i])
        codes = np.array([vocab.get(w, -1) for w in coded.words] + [-1], np.int64)
        out: IntArray = codes[coded.index]
        return out

    # -- one row -----------------------------------------------------------------------------------

    def put_edge(self, e: Edge, node: Node | None) -> None:
        t = self.edges
        row = t.row(e.id)
        c = t.cols
        c["id"][row], c["alive"][row], c["degraded"][row] = e.id, True, e.status == _DEGRADED
        self._node_at(row, node)

    def drop_edge(self, edge_id: int) -> None:
        row = self.edges.rows.get(edge_id)
        if row is not None:
            self.edges.cols["alive"][row] = False

    def put_node(self, edge_id: int, node: Node | None) -> None:
        row = self.edges.rows.get(edge_id)
        if row is not None:
            self._node_at(row, node)

    def _node_at(self, row: int, n: Node | None) -> None:
        c = self.edges.cols
        self.revision += 1
        c["revision"][row] = self.revision
        if n is None:
            c["node"][row], c["stale"][row], c["condition"][row] = False, False, -1
            for name in ("cpu", "memory", "low_confidence", "seen"):
                c[name][row] = NAN
            return
        c["node"][row], c["stale"][row] = True, n.stale
        c["cpu"][row], c["memory"][row] = _f(n.cpu_avg), _f(n.memory_avg)
        c["low_confidence"][row], c["seen"][row] = _f(n.low_confidence_share), _f(_ts(n))
        c["condition"][row] = self._code(self.conditions, n.condition)

    def put_deployment(self, d: Deployment, alive: bool) -> None:
        """A deployment as it is now (``alive``: in the mirror, desired running)."""
        t = self.deployments
        row = t.row(d.id)
        c = t.cols
        edge = self.edges.rows.get(d.edge_id)
        running = alive and d.desired == _RUNNING
        c["alive"][row] = running and edge is not None
        c["edge"][row] = 0 if edge is None else edge
        c["ai_id"][row] = d.ai_id
        c["filename"][row] = self._code(self.filenames, d.filename)
        c["helper"][row] = bool(d.helps)
        c["running"][row] = d.observed == _OBSERVED_RUNNING
        c["observed"][row] = _observed_code(d.observed)
        c["restarts"][row] = d.restarts
        if running and d.params:
            self.with_params.add(d.id)
        else:
            self.with_params.discard(d.id)

    def drop_deployment(self, dep_id: int) -> None:
        row = self.deployments.rows.get(dep_id)
        if row is not None:
            self.deployments.cols["alive"][row] = False
        self.with_params.discard(dep_id)

    # -- queries -----------------------------------------------------------------------------------

    def edge_statuses(self) -> dict[EdgeStatus, int]:
        """Live edges by status."""
        e = self.edges
        alive = e["alive"]
        degraded = int(np.count_nonzero(alive & e["degraded"]))
        return {
            EdgeStatus.ACTIVE: int(np.count_nonzero(alive)) - degraded,
            EdgeStatus.DEGRADED: degraded,
        }

    def observed_states(self) -> dict[ObservedState, int]:
        """Live deployments desired running, by observed state."""
        d = self.deployments
        codes = d["observed"][d["alive"]]
        counts = np.bincount(codes[codes >= 0], minlength=len(OBSERVED))
        return {state: int(counts[i]) for i, state in enumerate(OBSERVED)}

    def edge_ids(self, mask: BoolArray) -> IntArray:
        """The ids of the live edges where ``mask`` holds."""
        e = self.edges
        ids: IntArray = e["id"][mask & e["alive"]]
        return ids

    def edges_of(self, dep_mask: BoolArray) -> IntArray:
        """The ids of the edges of the live deployments where ``dep_mask`` holds."""
        d = self.deployments
        rows = d["edge"][dep_mask & d["alive"]]
        e = self.edges
        rows = rows[e["alive"][rows]]
        ids: IntArray = e["id"][rows]
        return ids

    def unique_edges_of(self, dep_mask: BoolArray) -> IntArray:
        """:meth:`edges_of`, each edge once, sorted (marked by row: no sort of the rows)."""
        d, e = self.deployments, self.edges
        rows = d["edge"][dep_mask & d["alive"]]
        marked = np.zeros(e.size, np.bool_)
        marked[rows] = True
        ids: IntArray = np.sort(e["id"][marked & e["alive"]])
        return ids

    def package_lookup(self, ai_ids: IntArray, package_ids: IntArray) -> tuple[IntArray, BoolArray]:
        """For each deployment's ai_id, its index in the sorted ``package_ids`` and whether that
        package is known."""
        if len(package_ids) == 0:
            return np.zeros(len(ai_ids), np.int64), np.zeros(len(ai_ids), np.bool_)
        idx = np.searchsorted(package_ids, ai_ids)
        idx = np.minimum(idx, len(package_ids) - 1)
        known = package_ids[idx] == ai_ids
        return idx.astype(np.int64), known
