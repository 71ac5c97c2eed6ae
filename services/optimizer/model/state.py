"""The fleet as one decision cycle sees it: plain objects with the indexes the policies need.

Built from setup's GET /fleet/snapshot and the VMS's GET /nodes/state answers; no I/O here.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import compress
from operator import attrgetter
from typing import Any

import numpy as np

from edge_common.vocabulary import Param
from services.optimizer.model.columns import (
    DeploymentArrays,
    EdgeArrays,
    FleetColumns,
    FloatArray,
    IntArray,
    NodeArrays,
    ReadArrays,
)
from services.optimizer.model.geo import GeoGrid
from shared.contracts.fleet import (
    DesiredState,
    EdgeStatus,
    FleetDeployment,
    FleetEdge,
    FleetPackage,
    FleetSnapshot,
    ObservedState,
    PackageStatus,
)
from shared.contracts.nodes import NodeState, NodeStates

# Enum members bound once: reading one off its class costs about five plain comparisons, and these
# are compared once per deployment or package of a 100k-edge fleet.
_RUNNING = DesiredState.RUNNING
_READY = PackageStatus.READY
_ID, _NID, _DESIRED = attrgetter("id"), attrgetter("nid"), attrgetter("desired")
_LATITUDE, _LONGITUDE = attrgetter("latitude"), attrgetter("longitude")
_CLUSTER = attrgetter("cluster_id")


def parse_ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(slots=True)
class Edge:
    id: int
    name: str
    nid: str
    cluster_id: int | None
    latitude: float | None
    longitude: float | None
    supports_analysis: bool
    status: EdgeStatus


@dataclass(slots=True)
class Package:
    id: int
    filename: str
    version: str
    version_key: str
    ai_class: str
    condition: str | None
    status: PackageStatus


@dataclass(slots=True)
class Deployment:
    id: int
    edge_id: int
    ai_id: int
    filename: str
    desired: DesiredState
    params: dict[str, Any]
    allow_multiple: bool
    generation: int
    observed: ObservedState
    observed_generation: int
    restarts: int
    decision_id: str | None
    observed_reason: str | None = None

    @property
    def helps(self) -> str | None:
        """The nid of the edge this deployment analyses for, when it is a helper copy."""
        value = self.params.get(Param.ANALYSIS_FOR) if self.params else None
        return str(value) if value else None


@dataclass(slots=True)
class Node:
    """The VMS's current view of one node."""

    nid: str
    condition: str | None
    streak: int
    cpu_avg: float | None
    memory_avg: float | None
    low_confidence_share: float | None
    frames_sent_up_share: float | None
    last_seen: datetime | None
    stale: bool
    # From the last detection summary: who analysed the camera, and what kept failing there.
    analysed_by: str | None = None
    source_unavailable: str | None = None
    analysis_unavailable: str | None = None


def node_from_wire(item: NodeState) -> Node:
    """One GET /nodes/state item as a Node."""
    usage = item["usage"]
    det = item["detections"]
    sent_up: float | None = None
    if det is not None and det.get("frames"):
        sent_up = (det.get("frames_sent_up") or 0) / det["frames"]
    return Node(
        nid=item["nid"],
        condition=item["condition"],
        streak=item["streak"],
        cpu_avg=usage["cpu_avg"] if usage is not None else None,
        memory_avg=usage["memory_avg"] if usage is not None else None,
        low_confidence_share=det.get("low_confidence_share") if det is not None else None,
        frames_sent_up_share=sent_up,
        last_seen=parse_ts(item["last_seen"]),
        stale=item["stale"],
        analysed_by=det.get("analysed_by") if det is not None else None,
        source_unavailable=det.get("source_unavailable") if det is not None else None,
        analysis_unavailable=det.get("analysis_unavailable") if det is not None else None,
    )


@dataclass(slots=True)
class FleetRead:
    """One answer of setup's GET /fleet/snapshot as objects, whichever form it came in (JSON or
    Arrow): whole, restricted to some edges, or (``edge_ids`` set) only the rows changed since
    an earlier answer, removed packages and deployments included."""

    edges: list[Edge]
    packages: list[Package]
    deployments: list[Deployment]
    ai_classes: dict[str, str]
    silent_clusters: set[int]
    generated_at: datetime | None
    edge_ids: list[int] | None = None  # every current edge id: only in ``since`` answers
    # The same edges and deployments as arrays, when the answer came in the Arrow form.
    edge_arrays: EdgeArrays | None = None
    deployment_arrays: DeploymentArrays | None = None


@dataclass(slots=True)
class NodesRead:
    """One answer of the VMS's GET /nodes/state as objects, whichever form it came in."""

    nodes: list[Node]
    generated_at: datetime | None
    arrays: NodeArrays | None = None  # the same nodes as arrays, from the Arrow form


def fleet_read_from_wire(snapshot: FleetSnapshot) -> FleetRead:
    """A JSON snapshot (parsed) as a FleetRead."""
    return FleetRead(
        edges=[edge_from_wire(e) for e in snapshot["edges"]],
        packages=[package_from_wire(p) for p in snapshot["ai_packages"]],
        deployments=[deployment_from_wire(d) for d in snapshot["deployments"]],
        ai_classes=dict(snapshot["conditions"]["ai_classes"]),
        silent_clusters=set(snapshot.get("silent_cluster_ids") or ()),
        generated_at=parse_ts(snapshot["generated_at"]),
        edge_ids=snapshot.get("edge_ids"),
    )


def nodes_read_from_wire(answer: NodeStates) -> NodesRead:
    """A JSON node-states answer (parsed) as a NodesRead."""
    return NodesRead(
        nodes=[node_from_wire(n) for n in answer["items"]],
        generated_at=parse_ts(answer["generated_at"]),
    )


@dataclass
class FleetState:
    """Everything one cycle decides over, indexed by edge, nid, filename and (filename,
    ai_class)."""

    edges: dict[int, Edge] = field(default_factory=dict)
    edges_by_nid: dict[str, Edge] = field(default_factory=dict)
    packages: dict[int, Package] = field(default_factory=dict)
    deployments: dict[int, Deployment] = field(default_factory=dict)
    by_edge: dict[int, list[Deployment]] = field(default_factory=dict)  # desired running only
    nodes: dict[str, Node] = field(default_factory=dict)
    ai_classes: dict[str, str] = field(default_factory=dict)  # condition -> ai_class
    # (filename, ai_class) -> ready packages sorted by version_key
    variants: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=dict)
    classes_of: dict[str, set[str]] = field(default_factory=dict)  # filename -> ready ai_classes
    newest: dict[str, Package] = field(default_factory=dict)  # filename -> newest ready package
    # Clusters whose master is silent (setup's silent_cluster_ids): nothing converges there, so
    # no decision is made for, or piled onto, their edges.
    silent_clusters: set[int] = field(default_factory=set)
    # The values the policies test first, as arrays (model.columns), kept in step with the objects.
    columns: FleetColumns = field(default_factory=FleetColumns)
    _grid: GeoGrid | None = None
    _cluster_grids: dict[int | None, GeoGrid] | None = None

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_wire(cls, snapshot: FleetSnapshot, nodes: list[NodeState]) -> FleetState:
        """From the JSON answers (parsed)."""
        return cls.from_read(
            fleet_read_from_wire(snapshot), NodesRead([node_from_wire(n) for n in nodes], None)
        )

    @classmethod
    def from_read(cls, fleet: FleetRead, nodes: NodesRead) -> FleetState:
        state = cls()
        state.ai_classes = fleet.ai_classes
        state.silent_clusters = fleet.silent_clusters
        for p in fleet.packages:
            state.add_package(p)
        # Keyed at C speed (``zip`` over ``attrgetter``); a repeated key keeps its first place.
        edges = state.edges = dict(zip(map(_ID, fleet.edges), fleet.edges, strict=True))
        state.edges_by_nid = dict(zip(map(_NID, fleet.edges), fleet.edges, strict=True))
        deployments = state.deployments = dict(
            zip(map(_ID, fleet.deployments), fleet.deployments, strict=True)
        )
        by_edge = state.by_edge
        running = map(_RUNNING.__eq__, map(_DESIRED, fleet.deployments))
        for d in compress(fleet.deployments, running):
            by_edge.setdefault(d.edge_id, []).append(d)
        state.nodes = dict(zip(map(_NID, nodes.nodes), nodes.nodes, strict=True))
        arrays = _arrays(fleet, nodes)
        if arrays is not None and (
            len(edges) != len(fleet.edges) or len(deployments) != len(fleet.deployments)
        ):
            arrays = None  # a repeated id: the dicts' rows are not the read's
        state.columns.build(list(edges.values()), state.nodes, list(deployments.values()), arrays)
        return state

    def add_package(self, p: Package) -> None:
        self.packages[p.id] = p
        if p.status != _READY:
            return
        insort(self.variants.setdefault((p.filename, p.ai_class), []), (p.version_key, p.id))
        self.classes_of.setdefault(p.filename, set()).add(p.ai_class)
        cur = self.newest.get(p.filename)
        if cur is None or p.version_key > cur.version_key:
            self.newest[p.filename] = p

    def master_silent(self, edge: Edge) -> bool:
        return edge.cluster_id is not None and edge.cluster_id in self.silent_clusters

    def add_edge(self, e: Edge) -> None:
        self.edges[e.id] = e
        self.edges_by_nid[e.nid] = e
        self.columns.put_edge(e, self.nodes.get(e.nid))
        self._geo_changed()

    def add_deployment(self, d: Deployment) -> None:
        self.deployments[d.id] = d
        if d.desired == _RUNNING:
            self.by_edge.setdefault(d.edge_id, []).append(d)
        self.columns.put_deployment(d, alive=True)

    def changed_edge(self, e: Edge) -> None:
        """An edge of the mirror was changed in place (its status): its columns follow."""
        self.columns.put_edge(e, self.nodes.get(e.nid))

    def changed_deployment(self, d: Deployment) -> None:
        """A deployment of the mirror was changed in place: its columns follow."""
        self.columns.put_deployment(d, alive=self.deployments.get(d.id) is d)

    def replace_edges(self, edge_ids: set[int], fleet: FleetRead, nodes: NodesRead) -> None:
        """Refresh a few edges in place from a snapshot restricted to them (event-driven cycles)."""
        self.silent_clusters = fleet.silent_clusters
        for edge_id in edge_ids:
            for d in self.by_edge.pop(edge_id, ()):
                self.deployments.pop(d.id, None)
                self.columns.drop_deployment(d.id)
        for d in [d for d in self.deployments.values() if d.edge_id in edge_ids]:
            self.deployments.pop(d.id, None)
            self.columns.drop_deployment(d.id)
        for e in fleet.edges:
            self._put_edge(e)
        for dep in fleet.deployments:
            if dep.edge_id in edge_ids:
                self.add_deployment(dep)
        self._put_nodes(nodes.nodes)

    def apply_changes(self, snapshot: FleetSnapshot, nodes: list[NodeState]) -> dict[str, int]:
        """:meth:`apply_read` of JSON answers (parsed)."""
        return self.apply_read(
            fleet_read_from_wire(snapshot), NodesRead([node_from_wire(n) for n in nodes], None)
        )

    def apply_read(self, fleet: FleetRead, nodes: NodesRead) -> dict[str, int]:
        """Fold an incremental answer into the mirror: setup's ``GET /fleet/snapshot?since=`` (rows
        changed after it, removed AIs and deployments included, ``edge_ids`` = every current edge)
        and the VMS's ``GET /nodes/state?since=`` (nodes whose state changed).

        The result equals ``from_read`` of a full snapshot taken now: same objects, same orders
        (dicts keep their first insertion, ``by_edge`` lists stay sorted by id), same indexes."""
        self.ai_classes = fleet.ai_classes
        self.silent_clusters = fleet.silent_clusters
        self._fold_packages(fleet.packages)
        for e in fleet.edges:
            self._put_edge(e)
        dropped = self._drop_missing_edges(fleet.edge_ids)
        for dep in fleet.deployments:
            self._fold_deployment(dep)
        self._put_nodes(nodes.nodes)
        return {
            "edges": len(fleet.edges),
            "edges_dropped": dropped,
            "ai_packages": len(fleet.packages),
            "deployments": len(fleet.deployments),
            "nodes": len(nodes.nodes),
        }

    def _fold_packages(self, packages: list[Package]) -> None:
        if not packages:
            return
        for p in packages:
            if p.status == PackageStatus.REMOVED:
                self.packages.pop(p.id, None)
            else:
                self.packages[p.id] = p
        self._reindex_packages()

    def _put_edge(self, edge: Edge) -> None:
        """A new or changed edge; an existing key keeps its place (as in a full snapshot)."""
        old = self.edges.get(edge.id)
        if old is not None and old.nid != edge.nid and self.edges_by_nid.get(old.nid) is old:
            del self.edges_by_nid[old.nid]
        self.edges[edge.id] = edge
        self.edges_by_nid[edge.nid] = edge
        self.columns.put_edge(edge, self.nodes.get(edge.nid))
        moved = old is None or (old.latitude, old.longitude, old.cluster_id) != (
            edge.latitude,
            edge.longitude,
            edge.cluster_id,
        )
        if moved:
            self._geo_changed()

    def _drop_missing_edges(self, current: list[int] | None) -> int:
        """New edges are in the answer, so the mirror holds every current edge: more means
        deletions. Returns how many were dropped."""
        if current is None or len(current) == len(self.edges):
            return 0
        keep = set(current)
        gone = [i for i in self.edges if i not in keep]
        for edge_id in gone:
            self._drop_edge(edge_id)
        return len(gone)

    def _fold_deployment(self, new: Deployment) -> None:
        was = self.deployments.get(new.id)
        if was is not None and was.desired == _RUNNING:
            lst = self.by_edge.get(was.edge_id)
            if lst is not None:
                lst[:] = [x for x in lst if x.id != was.id]
                if not lst:
                    del self.by_edge[was.edge_id]
        gone = new.desired != _RUNNING and new.observed == ObservedState.REMOVED
        if gone or new.edge_id not in self.edges:
            # Gone for good (a full snapshot no longer lists it), or its edge was deleted.
            self.deployments.pop(new.id, None)
            self.columns.drop_deployment(new.id)
            return
        self.deployments[new.id] = new
        if new.desired == _RUNNING:
            insort(self.by_edge.setdefault(new.edge_id, []), new, key=_by_id)
        self.columns.put_deployment(new, alive=True)

    def _put_nodes(self, nodes: list[Node]) -> None:
        by_nid, columns = self.edges_by_nid, self.columns
        for node in nodes:
            self.nodes[node.nid] = node
            edge = by_nid.get(node.nid)
            if edge is not None:
                columns.put_node(edge.id, node)

    def _reindex_packages(self) -> None:
        packages = sorted(self.packages.values(), key=_by_id)
        self.packages, self.variants, self.classes_of, self.newest = {}, {}, {}, {}
        for p in packages:
            self.add_package(p)

    def _drop_edge(self, edge_id: int) -> None:
        edge = self.edges.pop(edge_id)
        if self.edges_by_nid.get(edge.nid) is edge:
            del self.edges_by_nid[edge.nid]
        self.by_edge.pop(edge_id, None)
        for dep_id in [d.id for d in self.deployments.values() if d.edge_id == edge_id]:
            del self.deployments[dep_id]
            self.columns.drop_deployment(dep_id)
        self.columns.drop_edge(edge_id)
        self._geo_changed()

    # -- queries ---------------------------------------------------------------------------------

    def _geo_changed(self) -> None:
        """An edge came, went or moved (or changed cluster): the grids are built again."""
        self._grid = None
        self._cluster_grids = None

    def _located(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """Every edge's id, latitude and longitude (NaN: none), in the mirror's order."""
        edges = list(self.edges.values())
        n = len(edges)
        ids = np.fromiter(map(_ID, edges), np.int64, n)
        lats = np.array(list(map(_LATITUDE, edges)), np.float64)
        lons = np.array(list(map(_LONGITUDE, edges)), np.float64)
        return ids, lats.reshape(n), lons.reshape(n)

    @property
    def grid(self) -> GeoGrid:
        """Every located edge."""
        if self._grid is None:
            self._grid = GeoGrid.from_arrays(*self._located())
        return self._grid

    def cluster_grid(self, cluster_id: int | None) -> GeoGrid:
        """The located edges of one cluster (a helper is always of its edge's cluster: its search
        meets no other cluster's edges). Every cluster's grid is built at the first ask."""
        if self._cluster_grids is None:
            ids, lats, lons = self._located()
            clusters = list(map(_CLUSTER, self.edges.values()))
            codes = {c: k for k, c in enumerate(dict.fromkeys(clusters))}  # None included
            coded = np.fromiter(map(codes.__getitem__, clusters), np.int64, len(clusters))
            self._cluster_grids = {
                c: GeoGrid.from_arrays(ids[coded == k], lats[coded == k], lons[coded == k])
                for c, k in codes.items()
            }
        grid = self._cluster_grids.get(cluster_id)
        return grid if grid is not None else GeoGrid()

    def node_of(self, edge: Edge) -> Node | None:
        return self.nodes.get(edge.nid)

    def resolve(self, filename: str, ai_class: str, version_key: str) -> Package | None:
        """The ready package of this filename and class at this version, else the newest one
        below it."""
        found = self.variants.get((filename, ai_class))
        if not found:
            return None
        best = None
        for key, pid in found:
            if key <= version_key:
                best = pid
            else:
                break
        return self.packages[best] if best is not None else None

    def is_adaptive(self, filename: str) -> bool:
        """A filename with ready variants for more than one ai_class can follow the conditions."""
        return len(self.classes_of.get(filename, ())) > 1


def _arrays(fleet: FleetRead, nodes: NodesRead) -> ReadArrays | None:
    if fleet.edge_arrays is None or fleet.deployment_arrays is None or nodes.arrays is None:
        return None
    return ReadArrays(fleet.edge_arrays, fleet.deployment_arrays, nodes.arrays)


def _by_id(item: Any) -> int:
    return item.id


def edge_from_wire(e: FleetEdge) -> Edge:
    return Edge(
        id=e["id"],
        name=e["name"],
        nid=e["nid"],
        cluster_id=e["cluster_id"],
        latitude=e["latitude"],
        longitude=e["longitude"],
        supports_analysis=e["supports_analysis"],
        status=e["status"],
    )


def package_from_wire(p: FleetPackage) -> Package:
    return Package(
        p["id"],
        p["filename"],
        p["version"],
        p["version_key"],
        p["ai_class"],
        p["condition"],
        p["status"],
    )


def deployment_from_wire(d: FleetDeployment) -> Deployment:
    return Deployment(
        id=d["id"],
        edge_id=d["edge_id"],
        ai_id=d["ai_id"],
        filename=d["filename"],
        desired=d["desired"],
        params=d["params"],
        allow_multiple=d["allow_multiple"],
        generation=d["generation"],
        observed=d["observed"],
        observed_generation=d["observed_generation"],
        restarts=d["restarts"],
        decision_id=d["decision_id"],
        observed_reason=d.get("observed_reason"),
    )
