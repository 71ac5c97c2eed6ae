"""The analysis service's gateway: precise re-analysis of images on worker processes.

The gateway checks, rate-limits and queues; workers (``edgectl analysis-worker``) run the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

from services.analysis.gateway import Gateway
from services.analysis.inbox import VmsInbox
from services.analysis.metrics import GatewayMetrics
from services.analysis.router import router
from services.analysis.settings import AnalysisSettings
from services.analysis.videos import Videos
from shared.app import create_service_app

DESCRIPTION = """
Precise re-analysis of images by a larger YOLO model on worker processes (GPU or CPU), behind a
bounded queue. Repeated images are answered from a cache keyed by the image's SHA-256 and the
model; each caller has a token bucket (429 + Retry-After); edge boxes sent with an image are
fused with the server's by IoU. Frames the edges sent to the VMS's `POST /analysis` are consumed
too (ANALYSIS_CONSUME_VMS_INBOX) and their results written back there.
"""


def create_app(settings: AnalysisSettings | None = None) -> FastAPI:
    settings = settings or AnalysisSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        gateway = Gateway(settings, GatewayMetrics(app.state.metrics_registry))
        inbox = VmsInbox(gateway) if settings.consume_vms_inbox else None
        scheduler = AsyncIOScheduler()
        videos = Videos(gateway)
        app.state.gateway = gateway
        app.state.videos = videos
        app.state.readiness = gateway.readiness
        try:
            scheduler.add_job(gateway.refresh_queue_depth, "interval", seconds=5, id="queue-depth")
            if inbox is not None:
                scheduler.add_job(
                    inbox.cycle, "interval", seconds=settings.inbox_interval_s, id="vms-inbox"
                )
            scheduler.start()
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            await videos.close()
            if inbox is not None:
                await inbox.close()
            await gateway.close()

    return create_service_app(
        settings,
        title="Edge analysis",
        description=DESCRIPTION,
        routers=[router],
        extra_lifespan=lifespan,
        body_limits={"/videos": settings.video_max_bytes},
    )
