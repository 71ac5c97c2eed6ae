"""``edgectl agent --node NAME --port P [--workdir DIR] [--master-url URL]``: the edge agent;
``edgectl agent-key NID``: the key the master will present to that edge's agent (AGENT_KEY)."""

from __future__ import annotations

import os

import typer

from edge_ai.agent.cli import agent


def agent_key_command(
    nid: str = typer.Argument(..., help="the edge's node id, as registered in setup (e.g. 0x01)"),
) -> None:
    """Print the AGENT_KEY for the agent of edge NID (from EDGE_AGENT_KEY_SECRET, else derived from
    EDGE_SERVICE_TOKEN, as the master computes it). Give it to that agent only."""
    from shared.agent_keys import agent_key, derived_secret
    from shared.settings import LOCAL_SERVICE_TOKEN

    secret = os.environ.get("EDGE_AGENT_KEY_SECRET")
    if not secret:
        service_token = os.environ.get("EDGE_SERVICE_TOKEN")
        if not service_token and os.environ.get("EDGE_ENV") == "local":
            service_token = LOCAL_SERVICE_TOKEN
        if not service_token:
            typer.echo(
                "edgectl agent-key: set EDGE_AGENT_KEY_SECRET "
                "or EDGE_SERVICE_TOKEN (as the master has it)",
                err=True,
            )
            raise typer.Exit(2)
        secret = derived_secret(service_token)
    typer.echo(agent_key(secret, nid))


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.command("agent-key")(agent_key_command)
