"""The events the master pushes (ai_ready, deployment_failed) parse as the optimizer takes them
(shared.contracts.events): the master's real passes against setup (a process), its events
caught where the optimizer listens."""

from __future__ import annotations

from shared.contracts.events import Event, EventType
from tests.helpers.env import OPERATOR, SERVICE, free_port
from tests.master.conftest import setup_service
from tests.master.helpers import package_files, targz
from tests.master.test_reconcile import EventSink, edge, master, reconcile, sink, until

__all__ = ["master", "setup_service", "sink"]  # the fixtures this module uses


async def test_events_the_master_pushes_parse_as_the_optimizer_takes_them(master, sink: EventSink):
    r = await master.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
    ai_id = r.json()["ai"]["id"]
    built = (await master.post(f"/ai-packages/{ai_id}/build?wait=true", headers=SERVICE)).json()
    assert built["ai"]["status"] == "ready"

    e = await edge(master, "agent", agent_url=f"http://127.0.0.1:{free_port()}")
    ghost = {"filename": "ghost", "version": "01", "ai_class": "01"}
    ai = (await master.setup.post("/ai-packages", json=ghost)).json()
    dep = (
        await master.setup.post("/deployments", json={"edge_id": e["id"], "ai_id": ai["id"]})
    ).json()
    await master.post(
        f"/ai-packages/{ai['id']}/build?wait=true", headers=SERVICE
    )  # fails: no package
    await reconcile(master)

    def both() -> bool:
        return {ev["type"] for ev in sink.events} >= {"ai_ready", "deployment_failed"}

    await until(both)
    fields = {"path", "auth"}  # the sink's own
    events = [
        Event.model_validate({k: v for k, v in ev.items() if k not in fields}) for ev in sink.events
    ]
    by_type = {ev.type: ev for ev in events}
    assert by_type[EventType.AI_READY].ai_id == ai_id
    failed = by_type[EventType.DEPLOYMENT_FAILED]
    assert (
        failed.deployment_id == dep["id"] and failed.edge_id == e["id"] and failed.ai_id == ai["id"]
    )
    assert "failed to build" in failed.data["reason"]
