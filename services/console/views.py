"""What the Edge and AI packages pages show, gathered from the services: asked by the pages' first
load (/api) and by the live job for their Server-Sent Events. A service that does not answer is
named in ``problems`` while the rest still shows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from services.console.upstream import Upstreams
from shared.errors import DomainError


async def optional(problems: list[dict[str, str]], service: str, call: Awaitable[Any]) -> Any:
    try:
        return await call
    except DomainError as exc:
        problems.append({"service": service, "message": exc.message})
        return None


async def edge_view(up: Upstreams, edge_id: int) -> dict[str, Any]:
    """One edge: details (setup's answer raised: 404 for an unknown edge), deployments, explain,
    routing, pin and the packages it could run."""
    details = await up.setup.json("GET", f"/edges/{edge_id}")
    problems: list[dict[str, str]] = []
    deployments, explain, routing, pins, packages = await asyncio.gather(
        optional(
            problems,
            "setup",
            up.setup.json("GET", "/deployments", params={"edge_id": edge_id, "limit": 200}),
        ),
        optional(problems, "optimizer", up.optimizer.json("GET", f"/edges/{edge_id}/explain")),
        optional(problems, "optimizer", up.optimizer.json("GET", f"/routing/{details['nid']}")),
        optional(problems, "optimizer", up.optimizer.json("GET", "/pins")),
        optional(
            problems,
            "setup",
            up.setup.json("GET", "/ai-packages", params={"status": "ready", "limit": 200}),
        ),
    )
    pin = next((p for p in pins or [] if p["edge_id"] == edge_id), None)
    return {
        "edge": details,
        "deployments": (deployments or {}).get("items", []),
        "explain": explain,
        "routing": routing,
        "pin": pin,
        "ai_packages": (packages or {}).get("items", []),
        "problems": problems,
    }


async def packages_view(up: Upstreams) -> dict[str, Any]:
    """The AI packages with their build status, and the optimizer's rollouts."""
    problems: list[dict[str, str]] = []
    packages, rollouts = await asyncio.gather(
        optional(problems, "setup", up.setup.json("GET", "/ai-packages", params={"limit": 200})),
        optional(problems, "optimizer", up.optimizer.json("GET", "/rollouts")),
    )
    return {
        "items": (packages or {}).get("items", []),
        "rollouts": rollouts or [],
        "problems": problems,
    }
