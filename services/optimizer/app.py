"""The optimizer service: decides the desired deployments of the fleet, explains every decision.

edgectl serve optimizer      (port 8003; settings OPTIMIZER_*, see settings.py)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

from services.optimizer.control.router import router as control_router
from services.optimizer.decisions.router import router as decisions_router
from services.optimizer.engine.runner import DecisionRunner
from services.optimizer.events.router import router as events_router
from services.optimizer.metrics import OptimizerMetrics
from services.optimizer.routing.router import router as routing_router
from services.optimizer.settings import OptimizerSettings
from services.optimizer.sources.clients import AnalysisProbe, SetupClient, VmsClient
from shared.app import create_service_app

log = logging.getLogger("edge.optimizer")

DESCRIPTION = """
Keeps every edge on the right AI: the variant for its conditions, the newest version (in waves),
a recovered copy when one dies, help from a neighbour or the analysis server when it struggles,
focus when something happens nearby. Every decision is logged with what it saw (`/decisions`,
`/edges/{edge}/explain`); operators pause, dry-run, pin and tune (`/control`, `/pins`, `/policies`).
"""


def create_app(settings: OptimizerSettings | None = None) -> FastAPI:
    settings = settings or OptimizerSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup, vms = SetupClient(settings), VmsClient(settings)
        analysis = AnalysisProbe(settings)
        runner = DecisionRunner(
            settings, app.state.engine, app.state.sessionmaker, setup, vms, analysis
        )
        runner.metrics = OptimizerMetrics(app.state.metrics_registry)
        app.state.runner = runner
        scheduler = AsyncIOScheduler(timezone="UTC")
        app.state.scheduler = scheduler

        def wake_at(when: datetime) -> None:
            # A focus TTL ends, or a new condition will have held its hysteresis samples: decide
            # then (a date job, not a sleeping task). Each cycle sets the earliest wake-up it needs.
            scheduler.add_job(
                runner.request,
                "date",
                run_date=when + timedelta(milliseconds=50),
                kwargs={"full": True},
                id="wakeup",
                replace_existing=True,
            )

        async def keep_lease() -> None:
            was = runner.lease.held
            if await runner.lease.acquire() and not was:
                log.info("this replica (%s) now leads", runner.lease.me)
                runner.request(full=True)

        if settings.run_scheduler:
            runner.on_wakeup = wake_at
            await runner.start()
            scheduler.add_job(
                runner.request,
                "interval",
                seconds=settings.resync_seconds,
                kwargs={"full": True},
                id="resync",
                next_run_time=datetime.now().astimezone(),
                max_instances=1,
                coalesce=True,
            )
            scheduler.add_job(
                keep_lease,
                "interval",
                seconds=settings.lease_renew_s,
                id="lease",
                max_instances=1,
                coalesce=True,
            )
            scheduler.start()
        try:
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            await runner.stop()
            await setup.aclose()
            await vms.aclose()
            await analysis.aclose()

    return create_service_app(
        settings,
        title="Edge optimizer",
        description=DESCRIPTION,
        routers=[events_router, decisions_router, control_router, routing_router],
        extra_lifespan=lifespan,
        openapi_tags=[
            {"name": "events", "description": "pushed by the VMS, the master and setup"},
            {"name": "decisions", "description": "the decision log and explanations"},
            {
                "name": "control",
                "description": "pause, dry-run, pins, policy tuning, manual cycles",
            },
            {"name": "routing", "description": "what YOLO workers read"},
        ],
    )
