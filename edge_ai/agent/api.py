"""The agent's HTTP API: this agent's key (AGENT_KEY) for every route except /healthz and
/metrics."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Depends, Query, Request, Response
from typing_extensions import Annotated  # typing's needs Python 3.9

from edge_ai.agent import AGENT_VERSION
from edge_ai.agent.node import node_vitals
from edge_ai.agent.schemas import (
    DesiredSet,
    Heartbeat,
    LogTail,
    WorkloadList,
    WorkloadSpec,
    WorkloadStatus,
)
from edge_ai.agent.supervisor import PrepareError, Supervisor
from edge_common.compat import to_thread
from edge_common.platforms import architecture
from shared.auth import bearer_token
from shared.contracts.live_view import LiveViewAsk
from shared.errors import Invalid, NotFound, Unauthorized, Unavailable, UpstreamError


def require_master(request: Request) -> None:
    token = bearer_token(request)
    expected = request.app.state.settings.key.get_secret_value()
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized()


MasterAuth = Annotated[None, Depends(require_master)]


def supervisor_of(request: Request) -> Supervisor:
    return request.app.state.supervisor


SupervisorDep = Annotated[Supervisor, Depends(supervisor_of)]


def prepare_failure(exc: PrepareError, field: str) -> Exception:
    """A package that could not be fetched is the master's side (502/503); an unsafe one is refused
    (422)."""
    if exc.kind == "refused":
        return Invalid(f"{exc.name}: {exc}", field=field)
    if exc.kind == "mismatch":
        return UpstreamError(f"{exc.name}: {exc}", field=field)
    return Unavailable(f"{exc.name}: {exc}", field=field, headers={"Retry-After": "5"})


router = APIRouter(tags=["agent"])


@router.get("/healthz", summary="Process alive")
async def healthz(request: Request) -> dict:
    return {"status": "ok", "service": "agent", "node": request.app.state.settings.node}


@router.get(
    "/metrics",
    summary="Prometheus metrics: the node's cpu, memory, disk, network",
    include_in_schema=False,
)
async def metrics(request: Request) -> Response:
    """Open like /healthz (numbers only). Read from psutil in a thread."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = request.app.state.metrics_registry
    return Response(await to_thread(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)


@router.put("/live-view", summary="A live-view request (the master's, for a push agent)")
async def put_live_view(body: LiveViewAsk, _: MasterAuth, supervisor: SupervisorDep) -> dict:
    await to_thread(supervisor.request_live_view, body.fps, body.width, body.budget_bps, body.ttl_s)
    return {"accepted": True, "ttl_s": body.ttl_s}


@router.put(
    "/workloads", response_model=WorkloadList, summary="Replace the node's whole desired set"
)
async def put_workloads(
    body: DesiredSet, _: MasterAuth, supervisor: SupervisorDep, request: Request
) -> WorkloadList:
    try:
        await supervisor.replace_all(body.workloads)
    except PrepareError as exc:
        index = next(i for i, w in enumerate(body.workloads) if w.name == exc.name)
        raise prepare_failure(exc, f"workloads[{index}].package_digest") from exc
    return WorkloadList(
        node=request.app.state.settings.node,
        architecture=architecture(),
        workloads=supervisor.statuses(),
    )


@router.get("/workloads", response_model=WorkloadList, summary="State of every workload")
async def list_workloads(
    _: MasterAuth, supervisor: SupervisorDep, request: Request
) -> WorkloadList:
    return WorkloadList(
        node=request.app.state.settings.node,
        architecture=architecture(),
        workloads=supervisor.statuses(),
    )


@router.put(
    "/workloads/{name}", response_model=WorkloadStatus, summary="Create or replace one workload"
)
async def put_workload(
    name: str, body: WorkloadSpec, _: MasterAuth, supervisor: SupervisorDep
) -> WorkloadStatus:
    if body.name != name:
        raise Invalid(f"name {body.name!r} differs from the path's {name!r}", field="name")
    try:
        await supervisor.apply(body)
    except PrepareError as exc:
        raise prepare_failure(exc, "package_digest") from exc
    return supervisor.runners[name].status()


@router.get("/workloads/{name}", response_model=WorkloadStatus, summary="State of one workload")
async def get_workload(name: str, _: MasterAuth, supervisor: SupervisorDep) -> WorkloadStatus:
    runner = supervisor.runners.get(name)
    if runner is None:
        raise NotFound(f"no workload {name!r} on this node", field="name")
    return runner.status()


@router.delete("/workloads/{name}", summary="Stop and remove one workload")
async def delete_workload(name: str, _: MasterAuth, supervisor: SupervisorDep) -> dict:
    if not await supervisor.remove(name):
        raise NotFound(f"no workload {name!r} on this node", field="name")
    return {"name": name, "removed": True}


@router.get(
    "/workloads/{name}/logs", response_model=LogTail, summary="Last lines of a workload's output"
)
async def workload_logs(
    name: str, _: MasterAuth, supervisor: SupervisorDep, tail: int = Query(100, ge=1, le=10_000)
) -> LogTail:
    runner = supervisor.runners.get(name)
    if runner is None:
        raise NotFound(f"no workload {name!r} on this node", field="name")
    lines = runner.current.tail(tail) if runner.current is not None else []
    return LogTail(name=name, lines=lines)


@router.get(
    "/heartbeat", response_model=Heartbeat, summary="Node cpu, memory, uptime and agent version"
)
async def heartbeat(_: MasterAuth, supervisor: SupervisorDep, request: Request) -> Heartbeat:
    vitals = await to_thread(node_vitals, str(supervisor.workdir))
    return Heartbeat(
        node=request.app.state.settings.node,
        agent_version=AGENT_VERSION,
        architecture=architecture(),
        agent_uptime_s=round(time.monotonic() - request.app.state.started, 1),
        workloads=supervisor.counts(),
        ts=time.time(),
        **vitals,
    )
