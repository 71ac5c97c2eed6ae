"""The console's routes for managing the platform (session cookie; changes need the CSRF header):
edges, clusters and masters in setup's registry, the result-code -> condition map, and the
optimizer's policy settings. Thin: setup and the optimizer validate, the console passes their
answers (and their refusals, naming the field) on."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.console.api import RowId
from services.console.schemas import Problem, RegistryView, SettingsView
from services.console.sessions import SessionAuth
from services.console.upstream import UpstreamsDep
from services.console.views import optional
from shared.contracts.decisions import CHANGED_VIA_HEADER, ChangedVia, Policy
from shared.contracts.fleet import CONDITIONS, FleetConditions
from shared.contracts.policies import (
    POLICIES,
    POLICY_CHANGES,
    POLICY_OUTS,
    POLICY_PATCHES,
    AnyPolicyOut,
    PolicyOut,
    PolicyPatch,
)
from shared.contracts.registry import ClusterOut, EdgeCreated, EdgeOut, MasterOut
from shared.pagination import Page

router = APIRouter(prefix="/api", tags=["console"])

VIA_CONSOLE = {CHANGED_VIA_HEADER: ChangedVia.CONSOLE.value}
PolicyName = Annotated[Policy, Path(description="the policy")]


# --- the registry: edges, clusters, masters --------------------------------------------------


@router.get("/registry", summary="Edges, clusters and masters (with their state)")
async def registry(up: UpstreamsDep, _: SessionAuth) -> RegistryView:
    problems: list[Problem] = []
    every = {"limit": 10_000}
    edges, clusters, masters = await asyncio.gather(
        optional(problems, "setup", up.setup.model("GET", "/edges", Page[EdgeOut], params=every)),
        optional(
            problems, "setup", up.setup.model("GET", "/clusters", Page[ClusterOut], params=every)
        ),
        optional(
            problems, "setup", up.setup.model("GET", "/masters", Page[MasterOut], params=every)
        ),
    )
    return RegistryView(
        edges=edges.items if edges else [],
        clusters=clusters.items if clusters else [],
        masters=masters.items if masters else [],
        problems=problems,
    )


class GpsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class CapacityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: float | None = None
    memory_mb: int | None = None
    gpu: int | None = None


class EdgeFields(BaseModel):
    """What the console's edge form sends; setup checks every value again."""

    model_config = ConfigDict(extra="forbid")
    nid: str | None = Field(None, max_length=32)
    cluster_id: int | None = None
    address: str | None = Field(None, max_length=500)
    ip: str | None = Field(None, max_length=64)
    isSupportAnnalysis: Literal["YES", "NO"] | None = None  # the field's own spelling
    time_zone: str | None = Field(None, max_length=64)
    node_name: str | None = Field(None, max_length=253)
    gps: GpsIn | None = None
    capacity: CapacityIn | None = None
    description: str | None = Field(None, max_length=2000)


class EdgeIn(EdgeFields):
    name: str = Field(min_length=1, max_length=100)


class EdgeChange(EdgeFields):
    name: str | None = Field(None, min_length=1, max_length=100)


@router.post("/edges", status_code=201, summary="Register an edge (its token is shown once)")
async def add_edge(data: EdgeIn, up: UpstreamsDep, _: SessionAuth) -> EdgeCreated:
    body = data.model_dump(exclude_none=True)
    return await up.setup.model("POST", "/edges", EdgeCreated, json=body)


@router.patch("/edges/{edge_id}", summary="Change an edge's fields (those sent)")
async def edit_edge(edge_id: RowId, data: EdgeChange, up: UpstreamsDep, _: SessionAuth) -> EdgeOut:
    body = data.model_dump(exclude_unset=True)
    return await up.setup.model("PATCH", f"/edges/{edge_id}", EdgeOut, json=body)


@router.delete("/edges/{edge_id}", status_code=204, summary="Remove an edge (its tokens too)")
async def remove_edge(up: UpstreamsDep, edge_id: RowId, _: SessionAuth) -> Response:
    await up.setup.request("DELETE", f"/edges/{edge_id}")
    return Response(status_code=204)


class ClusterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    runtime: Literal["agent", "agent-pull", "kubernetes", "docker"] = "agent"
    namespace: str | None = Field(None, max_length=63)
    description: str = Field("", max_length=2000)


@router.post("/clusters", status_code=201, summary="Register a cluster")
async def add_cluster(data: ClusterIn, up: UpstreamsDep, _: SessionAuth) -> ClusterOut:
    body = data.model_dump(exclude_none=True)
    return await up.setup.model("POST", "/clusters", ClusterOut, json=body)


@router.delete("/clusters/{cluster_id}", status_code=204, summary="Remove a cluster")
async def remove_cluster(up: UpstreamsDep, cluster_id: RowId, _: SessionAuth) -> Response:
    await up.setup.request("DELETE", f"/clusters/{cluster_id}")
    return Response(status_code=204)


class MasterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=500)
    cluster_id: int | None = None
    description: str = Field("", max_length=2000)


@router.post("/masters", status_code=201, summary="Register a master (a record)")
async def add_master(data: MasterIn, up: UpstreamsDep, _: SessionAuth) -> MasterOut:
    body = data.model_dump(exclude_none=True)
    return await up.setup.model("POST", "/masters", MasterOut, json=body)


@router.delete("/masters/{master_id}", status_code=204, summary="Remove a master's record")
async def remove_master(up: UpstreamsDep, master_id: RowId, _: SessionAuth) -> Response:
    await up.setup.request("DELETE", f"/masters/{master_id}")
    return Response(status_code=204)


# --- settings: conditions and policies -------------------------------------------------------


@router.get("/settings", summary="The condition map, the policies' settings and who changed them")
async def settings(up: UpstreamsDep, _: SessionAuth) -> SettingsView:
    problems: list[Problem] = []
    conditions, policies, changes = await asyncio.gather(
        optional(problems, "setup", up.setup.adapted("GET", "/conditions", CONDITIONS)),
        optional(problems, "optimizer", up.optimizer.adapted("GET", "/policies", POLICIES)),
        optional(
            problems,
            "optimizer",
            up.optimizer.adapted("GET", "/policies/changes", POLICY_CHANGES, params={"limit": 20}),
        ),
    )
    return SettingsView(
        conditions=conditions,
        policies=policies or [],
        changes=changes or [],
        problems=problems,
    )


class ConditionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codes: dict[str, str] = Field(max_length=1000)
    ai_classes: dict[str, str] = Field(max_length=1000)


@router.put(
    "/conditions",
    response_model=FleetConditions,
    summary="Replace the result-code -> condition -> ai_class map",
)
async def set_conditions(data: ConditionsIn, up: UpstreamsDep, _: SessionAuth) -> FleetConditions:
    return await up.setup.adapted("PUT", "/conditions", CONDITIONS, json=data.model_dump())


def _tuning_route(policy: Policy, patch: type[PolicyPatch]) -> None:
    """``PATCH /api/policies/<policy>``: the optimizer's own change body for the policy (checked
    here first: an unknown setting or a wrong type is a 422 naming the field)."""

    async def tune_policy(changes: PolicyPatch, up: UpstreamsDep, _: SessionAuth) -> PolicyOut:
        return await up.optimizer.model(
            "PATCH",
            f"/policies/{policy.value}",
            POLICY_OUTS[policy],
            json=changes.changes(),
            headers=VIA_CONSOLE,
        )

    tune_policy.__annotations__["changes"] = Annotated[patch, Body()]
    router.add_api_route(
        f"/policies/{policy.value}",
        tune_policy,
        methods=["PATCH"],
        response_model=POLICY_OUTS[policy],
        summary=f"Change the {policy.value} policy's settings (the optimizer checks them again)",
        name=f"tune_{policy.value}",
    )


for _policy, _patch in POLICY_PATCHES.items():
    _tuning_route(_policy, _patch)


@router.delete(
    "/policies/{name}/overrides",
    response_model=AnyPolicyOut,
    summary="A policy back to the settings' defaults",
)
async def reset_policy(name: PolicyName, up: UpstreamsDep, _: SessionAuth) -> PolicyOut:
    return await up.optimizer.model(
        "DELETE", f"/policies/{name.value}/overrides", POLICY_OUTS[name], headers=VIA_CONSOLE
    )
