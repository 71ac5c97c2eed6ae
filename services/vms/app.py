"""The VMS: ingest per-second observations from every edge, store them durably and fast, answer
queries."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

from services.vms.analysis.router import MAX_IMAGE_BYTES
from services.vms.analysis.router import router as analysis_router
from services.vms.clips.router import router as clips_router
from services.vms.clips.service import ClipStore
from services.vms.ingest.committer import GroupCommitter
from services.vms.ingest.fastpath import IngestFastPath
from services.vms.ingest.metrics import IngestMetrics
from services.vms.ingest.router import legacy_router
from services.vms.ingest.router import router as ingest_router
from services.vms.ingest.service import IngestService
from services.vms.live.hub import LiveHub
from services.vms.live.router import MAX_FRAME_BYTES
from services.vms.live.router import router as live_router
from services.vms.nodes.directory import NodeDirectory
from services.vms.nodes.handoffs import HandoffCheck
from services.vms.notify.notifier import event_publisher, optimizer_outbox
from services.vms.queries.router import router as queries_router
from services.vms.queries.service import QueryService
from services.vms.retention.jobs import run_maintenance
from services.vms.settings import VmsSettings
from services.vms.storage.pool import create_ingest_pool
from shared.app import create_service_app

log = logging.getLogger("edge.vms")

DESCRIPTION = """
Receives what every edge posts each second (resource usage, environment results, YOLO detection
summaries), commits it to Postgres in group commits, keeps each node's current state, tells the
optimizer when a node's condition changes, and answers queries.

A 200 on an ingest route means the record is committed. 503 with Retry-After means try again.
"""


def tune_gc(young_threshold: int) -> None:
    """The cyclic garbage collector for a serving process (``VMS_GC_YOUNG_THRESHOLD``).

    A /batch request makes thousands of container objects (the parsed body, the payloads, the
    records), and CPython collects its youngest generation every 700 of them; the objects that live
    on through the group commit then reach the oldest generation, whose collections walk the
    whole heap (the app's modules, routes and schemas: most of the process). Profiled under
    load, that was a third of a worker's time. So, once started, everything the start made is
    frozen (``gc.freeze``: the collector never walks it again; what little of it is garbage
    stays), and the youngest generation is collected every ``young_threshold`` objects. 0 leaves
    Python's defaults.
    """
    if young_threshold <= 0:
        return
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)


async def _clip_retention(app: FastAPI, clips: ClipStore) -> None:
    async with app.state.sessionmaker() as session:
        await clips.retention(session)


def create_app(settings: VmsSettings | None = None) -> FastAPI:
    settings = settings or VmsSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        metrics = IngestMetrics(app.state.metrics_registry)
        pool = await create_ingest_pool(settings.database_url, settings.ingest_pool_size)
        directory = NodeDirectory(settings)
        handoffs = HandoffCheck(settings)
        outbox = optimizer_outbox(settings, app.state.metrics_registry)
        on_events = event_publisher(outbox) if settings.notify_optimizer else None
        committer = GroupCommitter(pool, settings, metrics, on_events=on_events)
        scheduler = AsyncIOScheduler()
        clips = ClipStore(settings)
        if settings.allow_anonymous:
            log.warning(
                "field devices WITHOUT a token are accepted on the field's routes "
                "(VMS_ALLOW_ANONYMOUS=true): their records are stored unauthenticated, under the "
                "edge whose device_login (setup) matches their username"
            )
        else:
            log.info(
                "field devices without a token are refused (VMS_ALLOW_ANONYMOUS=false): give a "
                "device without an agent a credential (edgectl edges credential EDGE --days N)"
            )
        try:
            await run_maintenance(pool, settings)
            await directory.start()
            outbox.start()
            await committer.start()
            app.state.ingest_pool = pool
            app.state.live = LiveHub()
            app.state.clips = clips
            app.state.directory = directory
            app.state.committer = committer
            app.state.ingest = IngestService(settings, directory, committer, metrics, handoffs)
            app.state.queries = QueryService(settings, directory)
            scheduler.add_job(
                directory.refresh, "interval", seconds=settings.nodes_refresh_s, id="directory"
            )
            scheduler.add_job(
                run_maintenance,
                "interval",
                args=[pool, settings],
                seconds=settings.retention_interval_s,
                id="partitions",
            )
            scheduler.add_job(
                _clip_retention,
                "interval",
                args=[app, clips],
                seconds=settings.retention_interval_s,
                id="clips",
            )
            scheduler.start()
            tune_gc(settings.gc_young_threshold)
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            await committer.stop()
            await outbox.stop()  # queued events get a short deadline to go out
            await directory.close()
            await handoffs.close()
            await pool.close()

    app = create_service_app(
        settings,
        title="Edge VMS",
        description=DESCRIPTION,
        routers=[
            legacy_router,
            ingest_router,
            queries_router,
            analysis_router,
            live_router,
            clips_router,
        ],
        extra_lifespan=lifespan,
        body_limits={
            "/batch": settings.batch_max_body_bytes,
            "/analysis": MAX_IMAGE_BYTES + 256 * 1024,
            "/live": MAX_FRAME_BYTES + 64 * 1024,
            "/clips": settings.clip_chunk_max_bytes + 64 * 1024,
        },
        # Right behind the shared request layer (request id, metrics, body limit), before the
        # framework.
        fast_path=IngestFastPath,
    )
    return app
