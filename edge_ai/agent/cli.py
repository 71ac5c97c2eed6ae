"""Running the agent: ``edgectl agent ...`` and ``python -m edge_ai.agent ...`` share this
command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edge_common.compat import removeprefix


def agent(
    node: str = typer.Option(..., "--node", help="this edge's node name, as registered in setup"),
    port: int = typer.Option(
        None, "--port", help="port of the agent's API (default: AGENT_PORT or 8010)"
    ),
    host: str = typer.Option(
        None, "--host", help="interface to listen on (default: AGENT_HOST or 127.0.0.1)"
    ),
    workdir: Path = typer.Option(
        None,
        "--workdir",
        help="packages, logs and state.json (default: AGENT_WORKDIR or ./edge-agent)",
    ),
    master_url: str = typer.Option(
        None,
        "--master-url",
        help="where packages are fetched (default: AGENT_MASTER_URL / EDGE_MASTER_URL)",
    ),
    mode: str = typer.Option(
        None,
        "--mode",
        help="push (the master calls this agent's API) or pull (behind NAT: listens on nothing, "
        "MQTT notices; default: AGENT_MODE or push)",
    ),
) -> None:
    """Run the edge agent: it runs the workloads the master asks for on this node, supervised."""
    import uvicorn
    from pydantic import ValidationError

    from edge_ai.agent.app import create_agent_app
    from edge_ai.agent.settings import AgentSettings

    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("node", node),
            ("port", port),
            ("host", host),
            ("workdir", workdir),
            ("master_url", master_url),
            ("mode", mode),
        )
        if v is not None
    }
    try:
        settings = AgentSettings(**overrides)
    except ValidationError as exc:
        # One line, the messages only (the input they carry holds the key and the token).
        why = "; ".join(removeprefix(str(e["msg"]), "Value error, ") for e in exc.errors())
        typer.echo(f"edgectl agent: cannot start: {why}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"edgectl agent: cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.mode == "pull":
        import asyncio

        from edge_ai.agent.puller import run_pull_agent

        asyncio.run(run_pull_agent(settings))
        return
    app = create_agent_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=settings.tls_cert_file,  # https when both are set
        ssl_keyfile=settings.tls_key_file,
    )
