"""The agent driver for edges the master cannot reach (behind NAT, on a carrier's network): the
``agent-pull`` runtime.

Nothing is sent to the edge. ``apply``/``remove`` stage the edge's desired set on the board,
``commit`` (the end of the edge's pass) makes it the set the agent pulls and, when it changed,
writes it to Postgres when several master processes share the board (pull/shared.py) and queues
an MQTT notice; ``observe`` answers from what the agent last reported
(``POST /edges/me/observed``), plus the desired workloads it has not reported yet (pending), so
the reconcile loop can take those away too.
"""

from __future__ import annotations

import functools

from services.master.drivers.agent import agent_spec, check_architecture, observed_workload
from services.master.drivers.base import (
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    Workload,
    WorkloadState,
)
from services.master.pull.board import DesiredBoard
from services.master.pull.notices import NoticePublisher
from services.master.pull.shared import SharedBoard
from shared.contracts.live_view import LiveViewRequest


class PullAgentDriver(RuntimeDriver):
    kind = "agent-pull"

    def __init__(
        self, board: DesiredBoard, notices: NoticePublisher, shared: SharedBoard | None = None
    ):
        self.board = board
        self.notices = notices
        self.shared = shared  # several master processes: the set goes to Postgres first

    async def request_live_view(self, edge: EdgeTarget, request: LiveViewRequest) -> None:
        """The edge's MQTT topic ``<prefix>/<nid>/live`` (not retained)."""
        if not self.notices.request_live_view(request):
            raise DriverUnavailable("this master has no MQTT broker (MASTER_MQTT_URL)")

    async def apply(self, workload: Workload) -> None:
        observed = self.board.edge(workload.edge.nid).observed
        check_architecture(workload, observed.architecture if observed is not None else None)
        self.board.stage(workload.edge.nid, agent_spec(workload))

    async def remove(self, edge: EdgeTarget, name: str) -> None:
        self.board.unstage(edge.nid, name)

    async def commit(self, edge: EdgeTarget, *, waiting: bool = False) -> None:
        if self.board.commit(edge.nid, waiting=waiting):
            b = self.board.edge(edge.nid)
            notice = functools.partial(
                self.notices.notify, edge.nid, tag=b.tag, generation=b.generation
            )
            if self.shared is not None:
                self.shared.publish(b, then=notice)  # every process serves it before the notice
            else:
                notice()

    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        b = self.board.edge(edge.nid)
        reported = b.observed.workloads if b.observed is not None else []
        seen = [observed_workload(w) for w in reported]
        names = {w.name for w in seen}
        waiting = "waiting for the agent to pull its desired set"
        if b.observed is not None and b.observed.error:
            waiting = f"the agent could not apply its desired set: {b.observed.error}"
        seen += [
            ObservedWorkload(
                deployment_id=spec.deployment_id,
                name=name,
                state=WorkloadState.PENDING,
                reason=waiting,
                version=spec.version,
                generation=None,
            )
            for name, spec in b.committed.items()
            if name not in names
        ]
        return seen
