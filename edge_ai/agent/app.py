"""The agent's ASGI app: the supervisor started in the lifespan and stopped with it
(SIGTERM/SIGINT)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

from edge_ai.agent import AGENT_VERSION
from edge_ai.agent.api import router
from edge_ai.agent.metrics import node_registry
from edge_ai.agent.node import prime_cpu_percent
from edge_ai.agent.parts import build_parts
from edge_ai.agent.settings import AgentSettings
from shared.api_docs import install_docs
from shared.http_errors import install_error_handlers

log = logging.getLogger("edge.agent")


def create_agent_app(settings: AgentSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        parts = build_parts(settings)
        workdir, tokens, fetcher = parts.workdir, parts.tokens, parts.fetcher
        supervisor = parts.supervisor
        app.state.edge_tokens = tokens
        scheduler = AsyncIOScheduler()
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        app.state.supervisor = supervisor
        app.state.metrics_registry = node_registry(
            settings.node,
            settings.nid,
            str(workdir),
            lambda: [str(w.state) for w in supervisor.statuses()],
        )
        app.state.started = time.monotonic()
        prime_cpu_percent()
        await supervisor.start()
        await tokens.renew_if_due()
        scheduler.add_job(
            tokens.renew_if_due, "interval", seconds=settings.token_check_s, id="renew-edge-token"
        )
        scheduler.start()
        log.info(
            "edge agent %s for node %s on port %s, workdir %s",
            AGENT_VERSION,
            settings.node,
            settings.port,
            workdir,
        )
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await supervisor.shutdown()
            await fetcher.aclose()
            log.info("edge agent stopped; no workload left running")

    app = FastAPI(
        title="Edge agent",
        description="Runs the platform's AI workloads on this edge node as supervised processes.",
        version=AGENT_VERSION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets (shared.api_docs): edges have no internet
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(router)
    if sys.version_info >= (3, 9):
        install_docs(app)
    # else: Python 3.8 (JetPack 5): the offline Swagger UI and ReDoc bundles need 3.9; the
    # agent serves its schema (/openapi.json) without the pages.
    return app
