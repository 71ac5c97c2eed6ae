"""``edgectl agent --node NAME --port P [--workdir DIR] [--master-url URL]``: the edge agent."""
from __future__ import annotations

import typer

from edge_ai.agent.cli import agent


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
