"""The services the console calls, each a ServiceClient.

The console holds no operator credential: a route called in a session reaches the services with
that session's own short-lived operator credential (``UpstreamsDep``: the clients acting as the
session, over the same connections); the console's background work (the live views' polling)
uses the console's own service credential, which may read, and open and end operator sessions at
setup, nothing else. The page never sees either."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated

from fastapi import Depends, Request

from services.console.sessions import SessionAuth
from services.console.settings import ConsoleSettings
from shared.service_client import ServiceClient


@dataclass
class Upstreams:
    setup: ServiceClient
    master: ServiceClient
    optimizer: ServiceClient
    vms: ServiceClient
    analysis: ServiceClient

    @classmethod
    def from_settings(cls, settings: ConsoleSettings) -> Upstreams:
        """The services reached with the console's own credential (EDGE_CONSOLE_TOKEN)."""
        token = settings.own_credential() or None
        timeout = settings.upstream_timeout_s

        def client(name: str, url: str, seconds: float = timeout) -> ServiceClient:
            return ServiceClient(name, url.rstrip("/"), token=token, timeout=seconds)

        return cls(
            setup=client("setup", settings.setup_url),
            master=client("master", settings.master_url, settings.analysis_timeout_s),
            optimizer=client("optimizer", settings.optimizer_url),
            vms=client("vms", settings.vms_url),
            analysis=client("analysis", settings.analysis_service_url, settings.analysis_timeout_s),
        )

    def acting_as(self, credential: str) -> Upstreams:
        """The same services (same connections) reached with a session's credential."""
        return Upstreams(
            **{f.name: getattr(self, f.name).acting_as(credential) for f in fields(self)}
        )

    def all(self) -> list[ServiceClient]:
        return [self.setup, self.master, self.optimizer, self.vms, self.analysis]

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()


async def session_upstreams(request: Request, session: SessionAuth) -> Upstreams:
    """The services as the request's session reaches them (its operator credential)."""
    own: Upstreams = request.app.state.upstreams
    return own.acting_as(session.credential)


UpstreamsDep = Annotated[Upstreams, Depends(session_upstreams)]
