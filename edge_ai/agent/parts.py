"""What the agent is made of in either mode (listening or pull): logging, its working folder,
its own edge token (renewed), the package fetcher and the supervisor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_ai.agent.credentials import BearerFromStore, EdgeTokenStore
from edge_ai.agent.fetcher import PackageFetcher
from edge_ai.agent.settings import AgentSettings
from edge_ai.agent.supervisor import Supervisor
from shared.logging import configure_logging


@dataclass
class AgentParts:
    workdir: Path
    tokens: EdgeTokenStore
    fetcher: PackageFetcher
    supervisor: Supervisor


def build_parts(settings: AgentSettings) -> AgentParts:
    configure_logging(
        "agent", level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values()
    )
    workdir = settings.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = EdgeTokenStore(
        workdir / "edge-token",
        settings.edge_token.get_secret_value() if settings.edge_token else None,
        setup_url=settings.setup_url,
        renew_before_s=settings.token_renew_before_s,
        verify=settings.verify,
    )
    fetcher = PackageFetcher(
        master_url=settings.master_url,
        auth=BearerFromStore(tokens),  # the edge's own token, never a service's
        cache_dir=workdir / "cache",
        timeout_s=settings.fetch_timeout_s,
        max_bytes=settings.max_package_bytes,
        verify=settings.verify,
    )
    supervisor = Supervisor(settings, fetcher, edge_token=tokens.current)
    tokens.on_renewed = supervisor.restart_all
    return AgentParts(workdir, tokens, fetcher, supervisor)
