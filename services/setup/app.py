"""The setup service: registry of clusters, masters, edges and AI packages, and the desired
deployments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.setup.ai_packages.router import router as ai_packages
from services.setup.clusters.router import router as clusters
from services.setup.conditions.router import router as conditions
from services.setup.credentials import own_table_loader as own_credential_revocations
from services.setup.deployments.router import router as deployments
from services.setup.edges.router import router as edges
from services.setup.edges.tokens import own_table_loader
from services.setup.fleet.router import router as fleet
from services.setup.keys import router as keys
from services.setup.legacy.router import router as legacy
from services.setup.master_client import MasterCalls
from services.setup.masters.router import router as masters
from services.setup.settings import SetupSettings
from shared.app import create_service_app


def create_app(settings: SetupSettings | None = None) -> FastAPI:
    settings = settings or SetupSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        master: MasterCalls = app.state.master
        master.start()
        try:
            yield
        finally:
            await master.stop()  # queued requests get a short deadline to go out

    app = create_service_app(
        settings,
        title="Edge platform: setup",
        description="Registry of clusters, masters, edge devices "
        "and AI packages, and the desired deployments. "
        "Every change needs `Authorization: Bearer <token>`.",
        routers=[
            clusters,
            masters,
            edges,
            ai_packages,
            deployments,
            conditions,
            fleet,
            legacy,
            keys,
        ],
        # The optimizer writes a whole cycle's differences in one bulk call.
        body_limits={"/deployments/bulk": settings.max_bulk_body_bytes},
        extra_lifespan=lifespan,
    )
    app.state.master = MasterCalls(
        settings, app.state.metrics_registry, enabled=settings.notify_master
    )
    app.state.revocation_loader = own_table_loader  # its own table, not a call to itself
    app.state.credential_revocation_loader = own_credential_revocations
    return app
