"""Events turn into decision requests at once; the runner coalesces them (``debounce_ms``).

A request is made once the request's transaction has committed (``after_commit``): a cycle that
starts earlier would not see the focus event it is asked about."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.optimizer.engine import store
from services.optimizer.engine.runner import DecisionRunner
from services.optimizer.events.schemas import EventAccepted
from shared.contracts.events import Event, EventType
from shared.db import after_commit, flush
from shared.errors import Invalid

# Events about one edge: they name it (nid or edge_id).
EDGE_EVENTS = (
    EventType.CONDITION_CHANGED,
    EventType.LOW_CONFIDENCE,
    EventType.DETECTION,
    EventType.DEPLOYMENT_FAILED,
)
# Events about what setup holds (observed state, packages): a whole cycle (a version wave spans the
# fleet; a failure is read from setup's rows).
FLEET_EVENTS = (EventType.AI_READY, EventType.DEPLOYMENT_FAILED)


async def accept(session: AsyncSession, runner: DecisionRunner, event: Event) -> EventAccepted:
    if event.type in EDGE_EVENTS and event.nid is None and event.edge_id is None:
        raise Invalid(f"a {event.type} event names its edge: nid or edge_id", field="nid")
    if event.type == EventType.DETECTION:
        return await _detection(session, runner, event)
    if event.type in FLEET_EVENTS:
        runner.request(full=True)
        return EventAccepted(type=event.type, scope="fleet")
    nids = {event.nid} if event.nid else set()
    edge_ids = {event.edge_id} if event.edge_id is not None else set()
    runner.request(nids=nids, edge_ids=edge_ids)
    return EventAccepted(type=event.type, scope="edge")


async def _detection(session: AsyncSession, runner: DecisionRunner, event: Event) -> EventAccepted:
    """A watched class seen: the neighbours of the node focus on it until the TTL ends."""
    cfg = runner.policies(await store.overrides(session)).focus
    hits = sorted(c for c, n in event.counts.items() if n and c in cfg.classes)
    if not cfg.enabled or not hits:
        return EventAccepted(type=event.type, scope="none")
    nid = event.nid
    if nid is None:
        fleet = await runner.fleet_view()
        edge = fleet.edges.get(event.edge_id) if event.edge_id is not None else None
        if edge is None:
            raise Invalid(f"edge {event.edge_id} is not in the fleet", field="edge_id")
        nid = edge.nid
    until = await store.add_focus(session, nid, hits, datetime.now(UTC), cfg.ttl_s)
    await flush(session)
    # The cycle decides for the neighbours: they are in its scope, so their deployments are read
    # fresh (a helper copy or a deployment made since the last resync is seen).
    neighbours = await _neighbours(runner, nid, cfg.radius_km)

    async def decide() -> None:
        runner.request(nids={nid, *neighbours})

    after_commit(session, decide)
    return EventAccepted(type=event.type, scope="edge", focus_until=until.isoformat())


async def _neighbours(runner: DecisionRunner, nid: str, radius_km: float) -> set[str]:
    """The nids of the edges within ``radius_km`` of ``nid`` (none when its position is unknown)."""
    fleet = await runner.fleet_view()
    source = fleet.edges_by_nid.get(nid)
    if source is None or source.latitude is None or source.longitude is None:
        return set()
    return {
        fleet.edges[key].nid
        for key, _km in fleet.grid.within(source.latitude, source.longitude, radius_km)
        if key in fleet.edges and key != source.id
    }
