"""The services the console calls on the operator's behalf, each a ServiceClient carrying the
operator token (the console acts for the operator who signed in with it; the page never sees
it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.console.settings import ConsoleSettings
from shared.deps import from_app_state
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
        token = settings.operator_token.get_secret_value() if settings.operator_token else None
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

    def all(self) -> list[ServiceClient]:
        return [self.setup, self.master, self.optimizer, self.vms, self.analysis]

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()


UpstreamsDep = Annotated[Upstreams, Depends(from_app_state("upstreams", Upstreams))]
