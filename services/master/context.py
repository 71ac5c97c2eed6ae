"""What the master's routes and background work share, built once in the app's lifespan.

The context holds resources only (settings, database, store, the clients of other services);
the background runners (builds, removals, the reconcile loop) are built on it and reached
through their own dependencies (services.master.runners), so no module here imports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.master.metrics import MasterMetrics
from services.master.packages import ArchiveLimits, ArtifactStore
from services.master.registry import RegistryConfig
from services.master.settings import MasterSettings
from services.master.setup_client import OptimizerEvents, SetupClient
from shared.deps import from_app_state


@dataclass
class MasterContext:
    settings: MasterSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    store: ArtifactStore
    setup: SetupClient
    optimizer: OptimizerEvents
    # The app's /metrics (None: metrics are kept but not exported, as in unit use).
    metrics: MasterMetrics | None = None
    # The engine itself (the shared board's lease and writes); None in unit use.
    engine: AsyncEngine | None = None

    @property
    def limits(self) -> ArchiveLimits:
        s = self.settings
        return ArchiveLimits(
            max_archive_bytes=s.max_upload_bytes,
            max_unpacked_bytes=s.max_unpacked_bytes,
            max_files=s.max_package_files,
        )

    @property
    def registry(self) -> RegistryConfig | None:
        s = self.settings
        if not s.registry_url:
            return None
        return RegistryConfig(
            url=s.registry_url,
            username=s.registry_username,
            password=s.registry_password,
            insecure=s.registry_insecure,
            tls_verify=s.registry_tls_verify,
            ca_file=s.registry_ca_file,
        )


ContextDep = Annotated[MasterContext, Depends(from_app_state("master", MasterContext))]
