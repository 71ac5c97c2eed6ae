"""What a cycle wants: per-deployment intents, new deployments, edge statuses, and the decisions
that asked for them. ``operations()`` diffs the intents against the current desired state and
returns only the differences, as setup's POST /deployments/bulk operations."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.optimizer.engine.state import Deployment, Edge, FleetState


@dataclass(slots=True)
class DecisionRecord:
    id: str
    at: datetime
    policy: str
    action: str
    reason: str
    edge_id: int | None = None
    edge_name: str | None = None
    nid: str | None = None
    deployment_id: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    operations: list[dict[str, Any]] = field(default_factory=list)
    # Decisions that change only the optimizer's own tables (routing) are applied at once.
    acts_on_setup: bool = True


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
        self.edge_status: dict[int, tuple[str, str]] = {}  # edge_id -> (status, decision_id)
        self.decisions: list[DecisionRecord] = []
        self.removed_ids: set[int] = set()

    # -- reading through the plan -------------------------------------------------------------

    def ai_id(self, d: Deployment) -> int:
        i = self.intents.get(d.id)
        return i.ai_id if i else d.ai_id

    def params(self, d: Deployment) -> dict[str, Any]:
        i = self.intents.get(d.id)
        return i.params if i else d.params

    def removed(self, d: Deployment) -> bool:
        return d.id in self.removed_ids

    def status_of(self, edge: Edge) -> str:
        wanted = self.edge_status.get(edge.id)
        return wanted[0] if wanted else edge.status

    # -- asking for changes -------------------------------------------------------------------

    def decide(
        self,
        policy: str,
        action: str,
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

    def create(self, edge_id: int, ai_id: int, params: dict[str, Any], decision: DecisionRecord, *, allow_multiple: bool) -> None:
        self.creates.append(NewDeployment(edge_id, ai_id, params, allow_multiple, decision.id))

    def set_edge_status(self, edge: Edge, status: str, decision: DecisionRecord) -> None:
        self.edge_status[edge.id] = (status, decision.id)

    # -- the diff -----------------------------------------------------------------------------

    def operations(self) -> list[dict[str, Any]]:
        """Only what differs from the current desired state, each tagged with its decision."""
        ops: list[dict[str, Any]] = []
        for edge_id, (status, decision_id) in sorted(self.edge_status.items()):
            edge = self.state.edges.get(edge_id)
            if edge is not None and edge.status != status:
                # setup's edge_status op carries no decision_id: the link is kept in the decision log.
                ops.append({"op": "edge_status", "edge_id": edge_id, "status": status, "_decision_id": decision_id})
        # Removals first so that a replacement never clashes with what it replaces.
        for i in sorted(self.intents.values(), key=lambda i: i.deployment.id):
            if i.remove:
                ops.append({"op": "remove", "id": i.deployment.id, "decision_id": i.decision_id})
        for i in sorted(self.intents.values(), key=lambda i: i.deployment.id):
            if i.remove:
                continue
            d = i.deployment
            op: dict[str, Any] = {"op": "update", "id": d.id}
            if i.ai_id != d.ai_id:
                op["ai_id"] = i.ai_id
            if i.params != d.params:
                op["params"] = i.params
            if len(op) == 2 and not i.bump:
                continue
            if i.bump:
                op["redeploy"] = True  # a new generation even when nothing else changes: the master redeploys
            op["expected_generation"] = d.generation
            op["decision_id"] = i.decision_id
            ops.append(op)
        for c in self.creates:
            ops.append(
                {
                    "op": "create",
                    "edge_id": c.edge_id,
                    "ai_id": c.ai_id,
                    "params": c.params,
                    "allow_multiple": c.allow_multiple,
                    "decision_id": c.decision_id,
                }
            )
        by_decision = {d.id: d for d in self.decisions}
        for op in ops:
            record = by_decision.get(op.get("decision_id") or op.get("_decision_id"))
            if record is not None:
                record.operations.append(op)
        return ops


def wire(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operations as setup takes them (without the optimizer's private keys)."""
    return [{k: v for k, v in op.items() if not k.startswith("_")} for op in ops]
