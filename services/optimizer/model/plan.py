"""What a cycle wants: per-deployment intents, new deployments, edge statuses, and the decisions
that asked for them. ``operations()`` diffs the intents against the current desired state and
returns only the differences, as setup's POST /deployments/bulk operations."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.optimizer.model.state import Deployment, Edge, FleetState
from shared.contracts.decisions import (
    Action,
    BulkOperation,
    CreateOp,
    EdgeStatusOp,
    Policy,
    RemoveOp,
    UpdateOp,
)
from shared.contracts.fleet import EdgeStatus


@dataclass(slots=True)
class DecisionRecord:
    id: str
    at: datetime
    policy: Policy
    action: Action
    reason: str
    edge_id: int | None = None
    edge_name: str | None = None
    nid: str | None = None
    deployment_id: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    operations: list[BulkOperation] = field(default_factory=list)
    # Decisions that change only the optimizer's own tables (routing) are applied at once.
    acts_on_setup: bool = True


@dataclass(slots=True, frozen=True)
class Planned:
    """One operation for setup and the decision that asked for it."""

    decision_id: str
    op: BulkOperation


@dataclass(slots=True)
class Intent:
    """The wanted state of one existing deployment."""

    deployment: Deployment
    ai_id: int
    params: dict[str, Any]
    bump: bool = False  # redeploy: a new generation even when nothing else changes
    remove: bool = False
    decision_id: str | None = None


@dataclass(slots=True)
class NewDeployment:
    edge_id: int
    ai_id: int
    params: dict[str, Any]
    allow_multiple: bool
    decision_id: str


class Plan:
    def __init__(self, state: FleetState, now: datetime, new_id: Callable[[], str] | None = None):
        self.state = state
        self.now = now
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self.intents: dict[int, Intent] = {}
        self.creates: list[NewDeployment] = []
        self.edge_status: dict[int, tuple[EdgeStatus, str]] = {}  # edge_id -> (status, decision_id)
        self.decisions: list[DecisionRecord] = []
        self.removed_ids: set[int] = set()
        # Edges something was planned for: the later policies of the cycle look at them again.
        self.touched: set[int] = set()

    # -- reading through the plan -------------------------------------------------------------

    def ai_id(self, d: Deployment) -> int:
        i = self.intents.get(d.id)
        return i.ai_id if i else d.ai_id

    def params(self, d: Deployment) -> dict[str, Any]:
        i = self.intents.get(d.id)
        return i.params if i else d.params

    def removed(self, d: Deployment) -> bool:
        return d.id in self.removed_ids

    def status_of(self, edge: Edge) -> EdgeStatus:
        wanted = self.edge_status.get(edge.id)
        return wanted[0] if wanted else edge.status

    # -- asking for changes -------------------------------------------------------------------

    def decide(
        self,
        policy: Policy,
        action: Action,
        reason: str,
        *,
        edge: Edge | None = None,
        deployment: Deployment | None = None,
        inputs: dict[str, Any] | None = None,
        acts_on_setup: bool = True,
    ) -> DecisionRecord:
        record = DecisionRecord(
            id=self.new_id(),
            at=self.now,
            policy=policy,
            action=action,
            reason=reason,
            edge_id=edge.id if edge else None,
            edge_name=edge.name if edge else None,
            nid=edge.nid if edge else None,
            deployment_id=deployment.id if deployment else None,
            inputs=inputs or {},
            acts_on_setup=acts_on_setup,
        )
        self.decisions.append(record)
        return record

    def _intent(self, d: Deployment) -> Intent:
        i = self.intents.get(d.id)
        if i is None:
            i = self.intents[d.id] = Intent(d, d.ai_id, d.params)
            self.touched.add(d.edge_id)
        return i

    def set_ai(self, d: Deployment, ai_id: int, decision: DecisionRecord) -> None:
        i = self._intent(d)
        i.ai_id, i.decision_id = ai_id, decision.id

    def set_params(self, d: Deployment, params: dict[str, Any], decision: DecisionRecord) -> None:
        i = self._intent(d)
        i.params, i.decision_id = params, decision.id

    def redeploy(self, d: Deployment, decision: DecisionRecord) -> None:
        i = self._intent(d)
        i.bump, i.decision_id = True, decision.id

    def remove(self, d: Deployment, decision: DecisionRecord) -> None:
        i = self._intent(d)
        i.remove, i.decision_id = True, decision.id
        self.removed_ids.add(d.id)

    def create(
        self,
        edge_id: int,
        ai_id: int,
        params: dict[str, Any],
        decision: DecisionRecord,
        *,
        allow_multiple: bool,
    ) -> None:
        self.creates.append(NewDeployment(edge_id, ai_id, params, allow_multiple, decision.id))
        self.touched.add(edge_id)

    def set_edge_status(self, edge: Edge, status: EdgeStatus, decision: DecisionRecord) -> None:
        self.edge_status[edge.id] = (status, decision.id)
        self.touched.add(edge.id)

    # -- the diff -----------------------------------------------------------------------------

    def operations(self) -> list[Planned]:
        """Only what differs from the current desired state, each with its decision."""
        planned = [*self._edge_status_ops(), *self._intent_ops(), *self._create_ops()]
        by_decision = {d.id: d for d in self.decisions}
        for p in planned:
            record = by_decision.get(p.decision_id)
            if record is not None:
                record.operations.append(p.op)
        return planned

    def _edge_status_ops(self) -> list[Planned]:
        out = []
        for edge_id, (status, decision_id) in sorted(self.edge_status.items()):
            edge = self.state.edges.get(edge_id)
            if edge is not None and edge.status != status:
                # setup's edge_status op carries no decision_id: the decision log keeps the link.
                out.append(
                    Planned(
                        decision_id,
                        EdgeStatusOp.model_construct(
                            op="edge_status", edge_id=edge_id, status=status
                        ),
                    )
                )
        return out

    def _intent_ops(self) -> list[Planned]:
        """Removals first, so that a replacement never clashes with what it replaces; then
        updates."""
        intents = sorted(self.intents.values(), key=lambda i: i.deployment.id)
        out: list[Planned] = []
        for i in intents:
            if i.remove and i.decision_id is not None:
                out.append(
                    Planned(
                        i.decision_id,
                        RemoveOp.model_construct(
                            op="remove", id=i.deployment.id, decision_id=i.decision_id
                        ),
                    )
                )
        for i in intents:
            d = i.deployment
            changed_ai, changed_params = i.ai_id != d.ai_id, i.params != d.params
            if i.remove or i.decision_id is None or not (changed_ai or changed_params or i.bump):
                continue
            op = UpdateOp.model_construct(
                op="update",
                id=d.id,
                ai_id=i.ai_id if changed_ai else None,
                params=i.params if changed_params else None,
                redeploy=True
                if i.bump
                else None,  # a new generation even when nothing else changes
                expected_generation=d.generation,
                decision_id=i.decision_id,
            )
            out.append(Planned(i.decision_id, op))
        return out

    def _create_ops(self) -> list[Planned]:
        return [
            Planned(
                c.decision_id,
                CreateOp.model_construct(
                    op="create",
                    edge_id=c.edge_id,
                    ai_id=c.ai_id,
                    params=c.params,
                    allow_multiple=c.allow_multiple,
                    decision_id=c.decision_id,
                ),
            )
            for c in self.creates
        ]
