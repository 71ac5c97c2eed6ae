"""What the agent is made of in either mode (listening or pull): logging, its working folder,
its own edge token (renewed), the package fetcher and the supervisor."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
    _warn_plain(settings)
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


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_plain(settings: AgentSettings) -> None:
    """Plain HTTP or MQTT to another machine is for development only: said once, at start. Over
    https/mqtts the agent verifies the certificates (AGENT_MASTER_CA_FILE, AGENT_MQTT_CA_FILE, or
    the system's CAs)."""
    log = logging.getLogger("edge.agent")
    targets = [("master", settings.master_url), ("setup", settings.setup_url)]
    if settings.mqtt_url:
        targets.append(("broker", settings.mqtt_url))
    for name, url in targets:
        scheme = urlsplit(url).scheme
        if scheme in ("http", "mqtt", "tcp") and not _loopback(url):
            log.warning(
                "the %s is reached over plain %s at %s: for development only, use %s",
                name,
                scheme.upper(),
                url,
                "https" if scheme == "http" else "mqtts",
            )
