"""Events turn into decision requests at once; the runner coalesces them (``debounce_ms``)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from services.optimizer.engine import store
from services.optimizer.engine.runner import DecisionRunner
from services.optimizer.events.schemas import Event, EventAccepted
from shared.errors import Invalid

EDGE_EVENTS = ("condition_changed", "deployment_failed", "overloaded", "low_confidence")
# Events about what setup holds (observed state, packages) need setup's rows fresh: a whole cycle.
FLEET_EVENTS = ("ai_ready", "deployment_failed")


def _classes(event: Event) -> list[str]:
    """Detected classes: ``counts`` (the VMS's shape) or ``classes``/``class``, top level or under data."""
    extra = event.model_extra or {}
    found: list[str] = []
    for source in (extra, event.data):
        counts = source.get("counts")
        if isinstance(counts, dict):
            found += [str(c) for c, n in counts.items() if n]
        if isinstance(source.get("classes"), list):
            found += [str(c) for c in source["classes"]]
        if source.get("class"):
            found.append(str(source["class"]))
    return sorted(set(found))


async def accept(session: AsyncSession, runner: DecisionRunner, event: Event) -> EventAccepted:
    if event.type in EDGE_EVENTS or event.type == "detection":
        if event.nid is None and event.edge_id is None:
            raise Invalid(f"a {event.type} event names its edge: nid or edge_id", field="nid")
    nids = {event.nid} if event.nid else set()
    edge_ids = {event.edge_id} if event.edge_id is not None else set()
    if event.type == "detection":
        cfg = runner.policies(await store.overrides(session)).focus
        hits = [c for c in _classes(event) if c in cfg.classes]
        if not cfg.enabled or not hits:
            return EventAccepted(type=event.type, scope="none")
        nid = event.nid
        if nid is None:
            fleet = await runner.fleet_view()
            edge = fleet.edges.get(event.edge_id)  # type: ignore[arg-type]
            if edge is None:
                raise Invalid(f"edge {event.edge_id} is not in the fleet", field="edge_id")
            nid = edge.nid
        until = await store.add_focus(session, nid, hits, datetime.now(timezone.utc), cfg.ttl_s)
        await session.commit()
        runner.request(nids={nid})
        return EventAccepted(type=event.type, scope="edge", focus_until=until.isoformat())
    if event.type in FLEET_EVENTS:
        runner.request(full=True)  # a version wave spans the fleet; a failure is read from setup
        return EventAccepted(type=event.type, scope="fleet")
    runner.request(nids=nids, edge_ids=edge_ids)
    return EventAccepted(type=event.type, scope="edge")
