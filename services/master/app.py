"""The master: AI packages become stored artifacts and registry images, and run on edges through a
runtime driver (edge agent, Kubernetes, Docker), reconciled against setup's desired state."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.master.artifacts.deltas import DeltaCache, UpdateTraffic
from services.master.artifacts.fastpath import ArtifactFastPath, SmallArtifacts
from services.master.artifacts.router import router as artifacts_router
from services.master.builds.router import builds_router as build_logs_router
from services.master.builds.router import router as builds_router
from services.master.context import MasterContext
from services.master.legacy.router import router as legacy_router
from services.master.metrics import MasterMetrics
from services.master.packages import ArtifactStore
from services.master.pull.fastpath import DesiredFastPath
from services.master.reconcile.deployments_router import router as deployments_router
from services.master.reconcile.live_view_router import router as live_view_router
from services.master.reconcile.pull_router import router as pull_router
from services.master.reconcile.router import router as reconcile_router
from services.master.runners import Runners
from services.master.settings import MasterSettings
from services.master.setup_client import OptimizerEvents, SetupClient
from services.master.uploads.router import router as uploads_router
from shared.app import create_service_app

log = logging.getLogger("edge.master")

DESCRIPTION = """
Turns AI packages into artifacts (content-addressed, on disk) and images (pushed to the private
registry), and makes every edge run what setup says it should: a reconcile pass every
`MASTER_RECONCILE_SECONDS` and at once on `POST /reconcile`, through the edge agent, Kubernetes or
Docker driver of the edge's cluster. Observed state is written back to setup.
"""

# Multipart framing and form fields around the archive.
UPLOAD_SLACK = 64 * 1024


def create_app(settings: MasterSettings | None = None) -> FastAPI:
    settings = settings or MasterSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ArtifactStore(settings.artifact_dir)
        leftovers = store.clean_tmp()  # uploads and builds cut short by a crash
        if leftovers:
            log.info("removed %d unfinished upload/build files", leftovers)
        settings.package_dir.mkdir(parents=True, exist_ok=True)
        ctx = MasterContext(
            settings=settings,
            sessionmaker=app.state.sessionmaker,
            store=store,
            setup=SetupClient(settings),
            optimizer=OptimizerEvents(settings, app.state.metrics_registry),
            metrics=MasterMetrics(app.state.metrics_registry),
            engine=app.state.engine,
        )
        runners = Runners.on(ctx)
        app.state.deltas = DeltaCache(
            store,
            UpdateTraffic(app.state.metrics_registry),
            max_ratio=settings.delta_max_ratio,
            xor_max_ratio=settings.delta_xor_max_ratio,
            max_bytes=settings.delta_cache_max_bytes,
            max_age_s=settings.delta_cache_max_age_s,
        )
        app.state.small_artifacts = SmallArtifacts(
            settings.artifact_memory_bytes,
            settings.artifact_memory_file_bytes,
            app.state.metrics_registry,
        )
        app.state.master = ctx
        runners.install(app.state)
        ctx.optimizer.start()
        await runners.start()
        try:
            yield
        finally:
            await runners.stop()
            await app.state.deltas.aclose()
            await ctx.optimizer.stop()  # what the runners queued last still goes out
            await ctx.setup.aclose()

    return create_service_app(
        settings,
        title="Edge platform: master",
        description=DESCRIPTION,
        routers=[
            uploads_router,
            builds_router,
            build_logs_router,
            deployments_router,
            reconcile_router,
            artifacts_router,
            pull_router,
            live_view_router,
            legacy_router,
        ],
        extra_lifespan=lifespan,
        body_limits={"/ai-packages": settings.max_upload_bytes + UPLOAD_SLACK},
        # The two requests every pull agent makes after an update notice, answered lean.
        fast_path=lambda app: DesiredFastPath(ArtifactFastPath(app)),
    )
