"""The web console: the fleet at a glance, one edge in depth, AI packages, the decision log and
the detection pages, in the browser. It is the browser's one origin: it holds the operator's
session and calls the other services on the operator's behalf (no token in the page, no CORS)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from services.console import api, manage, pages, sessions
from services.console.live import Live
from services.console.live_view import LiveViews
from services.console.settings import ConsoleSettings
from services.console.upstream import Upstreams
from shared.api_docs import documented_error
from shared.app import create_service_app

STATIC = Path(__file__).parent / "static"

DESCRIPTION = """
The operator's web console (open `/` in a browser). Sign in with the operator token (or an operator
credential): the console holds no operator credential of its own; setup exchanges what was
presented for a short-lived operator credential of this session only, revoked at sign-out. The
console keeps the session (an httpOnly, SameSite=Strict cookie) and calls setup, master,
optimizer, VMS and analysis with the session's credential. The routes below serve its pages; a
change needs the session's CSRF token in `X-CSRF-Token`.
"""

SESSION_RULE = {
    "rule": "session",
    "operator": True,
    "services": [],
    "edge": False,
    "who": "the operator's console session (cookie); a change also its X-CSRF-Token",
}


async def _no_revocations() -> dict[str, int]:
    return {}  # the console accepts no edge tokens


SAFE_METHODS = {"get", "head", "options"}
# What a console route relays from the service it calls (their error answers pass through).
RELAYED = ("404", "409", "422", "502", "503")


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    """401 without a session; 403 for a change without its CSRF token; and the answers of the
    service behind the route, which the console passes on."""
    responses = operation.setdefault("responses", {})
    statuses = ["401"]
    if method not in SAFE_METHODS:
        statuses.append("403")
    if path != "/api/session":
        statuses += RELAYED
    for status in statuses:
        responses.setdefault(status, documented_error(status))
    responses["401"]["description"] = "No console session: sign in at /login"
    if "403" in responses:
        responses["403"]["description"] = "A change without the session's CSRF token, or from "
        responses["403"]["description"] += "another Origin"


def _document_sessions(app: FastAPI) -> None:
    """The console's API routes are called with the session cookie, not a bearer token; a change
    (any method but GET/HEAD/OPTIONS) also with the session's CSRF token in its header."""
    documented = app.openapi

    def openapi() -> dict[str, Any]:
        schema = documented()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue
            for method, operation in operations.items():
                operation["x-auth"] = dict(SESSION_RULE)
                requirement: dict[str, list[str]] = {"console_session": []}
                if method not in SAFE_METHODS:
                    requirement["console_csrf"] = []
                operation["security"] = [requirement]
                _document_errors(path, method, operation)
                text = operation.get("description", "").split("\n\nWho may call:")[0]
                operation["description"] = (
                    text + f"\n\nWho may call: {SESSION_RULE['who']}."
                ).strip()
        components = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        components["console_session"] = {
            "type": "apiKey",
            "in": "cookie",
            "name": sessions.COOKIE,
            "description": "the session cookie set by signing in at /login (httpOnly)",
        }
        components["console_csrf"] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRF-Token",
            "description": "the session's CSRF token, from the page's "
            '<meta name="csrf-token">; required on every change',
        }
        # No console operation takes a bearer token: the scheme is not offered.
        used = {
            name
            for operations in schema.get("paths", {}).values()
            for operation in operations.values()
            for requirement in operation.get("security", [])
            for name in requirement
        }
        if "bearer" not in used:
            components.pop("bearer", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        upstreams = Upstreams.from_settings(settings)
        live = Live(upstreams)
        app.state.upstreams = upstreams
        app.state.live = live
        app.state.live_views = LiveViews(upstreams)
        store = sessions.SessionStore(settings, app.state.sessionmaker, upstreams.setup)
        app.state.sessions = store
        scheduler = AsyncIOScheduler()
        try:
            scheduler.add_job(
                live.tick, "interval", seconds=settings.live_interval_s, id="live", max_instances=1
            )
            scheduler.add_job(store.sweep_expired, "interval", minutes=1, id="sweep")
            scheduler.start()
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            await upstreams.aclose()

    upload_limit = settings.upload_max_bytes
    app = create_service_app(
        settings,
        title="Edge console",
        description=DESCRIPTION,
        routers=[pages.router, api.router, manage.router],
        extra_lifespan=lifespan,
        body_limits={
            "/api/ai-packages": upload_limit,
            "/api/videos": upload_limit,
            "/api/analyze": settings.image_max_bytes,
        },
    )
    app.state.revocation_loader = lambda _app: _no_revocations
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _document_sessions(app)
    return app
