"""Setup's deployment models: one deployment (shared.contracts.deployments, which the master's
pass-through speaks too), the bulk write (POST /deployments/bulk, the optimizer's contract:
shared.contracts.decisions); states are the fleet's (shared.contracts.fleet)."""

from __future__ import annotations

from shared.contracts.decisions import (
    BulkOperation,
    BulkRequest,
    BulkResponse,
    BulkResult,
    CreateOp,
    EdgeStatusOp,
    RemoveOp,
    UpdateOp,
)
from shared.contracts.deployments import DeploymentCreate, DeploymentOut, DeploymentUpdate
from shared.contracts.master import ObservedReport, ObservedReports

__all__ = [
    "BulkOperation",
    "BulkRequest",
    "BulkResponse",
    "BulkResult",
    "CreateOp",
    "DeploymentCreate",
    "DeploymentOut",
    "DeploymentUpdate",
    "EdgeStatusOp",
    "ObservedReport",
    "ObservedReports",
    "RemoveOp",
    "UpdateOp",
]
