"""What the Edge and AI packages pages show, gathered from the services: asked by the pages' first
load (/api) and by the live job for their Server-Sent Events. A service that does not answer is
named in ``problems`` while the rest still shows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import TypeAdapter

from services.console.schemas import EdgeView, PackagesView, Problem
from services.console.upstream import Upstreams
from shared.contracts.decisions import EdgeExplained, PinOut, RolloutOut
from shared.contracts.deployments import DeploymentOut
from shared.contracts.master import AiPackageRecord
from shared.contracts.registry import EdgeOut
from shared.contracts.routing import EdgeRouting
from shared.errors import DomainError
from shared.pagination import Page

T = TypeVar("T")

PINS: TypeAdapter[list[PinOut]] = TypeAdapter(list[PinOut])
ROLLOUTS: TypeAdapter[list[RolloutOut]] = TypeAdapter(list[RolloutOut])


async def optional(problems: list[Problem], service: str, call: Awaitable[T]) -> T | None:
    """The answer, or None with the service named in ``problems``."""
    try:
        return await call
    except DomainError as exc:
        problems.append(Problem(service=service, message=exc.message))
        return None


async def edge_view(up: Upstreams, edge_id: int) -> EdgeView:
    """One edge: details (setup's answer raised: 404 for an unknown edge), deployments, explain,
    routing, pin and the packages it could run."""
    details = await up.setup.model("GET", f"/edges/{edge_id}", EdgeOut)
    problems: list[Problem] = []
    deployments, explain, routing, pins, packages = await asyncio.gather(
        optional(
            problems,
            "setup",
            up.setup.model(
                "GET",
                "/deployments",
                Page[DeploymentOut],
                params={"edge_id": edge_id, "limit": 200},
            ),
        ),
        optional(
            problems,
            "optimizer",
            up.optimizer.model("GET", f"/edges/{edge_id}/explain", EdgeExplained),
        ),
        optional(
            problems, "optimizer", up.optimizer.model("GET", f"/routing/{details.nid}", EdgeRouting)
        ),
        optional(problems, "optimizer", up.optimizer.adapted("GET", "/pins", PINS)),
        optional(
            problems,
            "setup",
            up.setup.model(
                "GET",
                "/ai-packages",
                Page[AiPackageRecord],
                params={"status": "ready", "limit": 200},
            ),
        ),
    )
    return EdgeView(
        edge=details,
        deployments=deployments.items if deployments else [],
        explain=explain,
        routing=routing,
        pin=next((p for p in pins or [] if p.edge_id == edge_id), None),
        ai_packages=packages.items if packages else [],
        problems=problems,
    )


async def packages_view(up: Upstreams) -> PackagesView:
    """The AI packages with their build status, and the optimizer's rollouts."""
    problems: list[Problem] = []
    packages, rollouts = await asyncio.gather(
        optional(
            problems,
            "setup",
            up.setup.model("GET", "/ai-packages", Page[AiPackageRecord], params={"limit": 200}),
        ),
        optional(problems, "optimizer", up.optimizer.adapted("GET", "/rollouts", ROLLOUTS)),
    )
    return PackagesView(
        items=packages.items if packages else [],
        rollouts=rollouts or [],
        problems=problems,
    )
