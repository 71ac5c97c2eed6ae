"""The app factory every service uses: lifespan (migrations, engine), health, metrics, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import migrations
from shared.api_docs import document_security_and_errors, install_docs
from shared.auth import PrincipalCache
from shared.db import (
    RETRY_AFTER,
    create_engine,
    create_probe_engine,
    database_ready,
    make_sessionmaker,
    overloaded,
    translate_db_error,
)
from shared.edge_tokens import RevocationSet
from shared.errors import DomainError, Unavailable
from shared.http_errors import answer
from shared.http_errors import install_error_handlers as install_http_error_handlers
from shared.input_checks import database_value_error
from shared.logging import configure_logging
from shared.middleware import HttpMetrics, RequestContextMiddleware
from shared.public_keys import KeyWatcher
from shared.revocations import RevocationWatcher, http_credential_loader, http_loader
from shared.settings import ServiceSettings

log = logging.getLogger("edge.app")

ExtraLifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]
ASGIApp = Callable[..., Any]


class ServiceApp(FastAPI):
    """A FastAPI app with the shared request layer (request id, metrics, body limit) in front of
    everything, the framework's own layers included, and optionally a fast path right behind it
    that answers a service's hottest routes without the framework (the VMS's ingest)."""

    front: ASGIApp

    async def __call__(self, scope, receive, send) -> None:
        scope["app"] = self
        await self.front(scope, receive, send)

    async def framework(self, scope, receive, send) -> None:
        await super().__call__(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """The project's error answers (shared.http_errors) and the database's errors translated."""
    install_http_error_handlers(app)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(asyncpg.exceptions.DataError)
    @app.exception_handler(asyncpg.exceptions._base.DataError)
    async def _data(request: Request, exc: Exception) -> JSONResponse:
        # A value the database refuses as data (an id beyond its column's range): 422 naming it.
        refused = database_value_error(request.scope, exc)
        if refused is not None:
            return answer(request, refused)
        translated = translate_db_error(exc)
        if isinstance(translated, DomainError):
            return answer(request, translated)
        raise exc

    @app.exception_handler(IntegrityError)
    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        translated = translate_db_error(exc)
        if isinstance(translated, DomainError):
            return answer(request, translated)
        raise exc

    # Exhaustion and unreachable dependencies are overload, never a 500: 503 + Retry-After.
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(asyncpg.exceptions.TooManyConnectionsError)
    @app.exception_handler(asyncpg.exceptions.CannotConnectNowError)
    @app.exception_handler(asyncpg.exceptions.QueryCanceledError)
    @app.exception_handler(asyncpg.exceptions.LockNotAvailableError)
    async def _exhausted(request: Request, exc: Exception) -> JSONResponse:
        busy = overloaded(exc) or Unavailable(
            "the database is unreachable, retry later", headers=RETRY_AFTER
        )
        log.warning("overloaded: %s: %s", type(exc).__name__, str(exc)[:200])
        return answer(request, busy)

    @app.exception_handler(ConnectionError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _unreachable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("a dependency is unreachable: %s: %s", type(exc).__name__, str(exc)[:200])
        busy = Unavailable(
            f"a dependency is unreachable or slow ({type(exc).__name__}), retry later",
            headers=RETRY_AFTER,
        )
        return answer(request, busy)


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Process alive")
    async def healthz(request: Request) -> dict[str, str]:
        return {"status": "ok", "service": request.app.state.settings.service_name}

    @router.get("/readyz", summary="Database reachable")
    async def readyz(request: Request) -> JSONResponse:
        status, body = await request.app.state.ready.answer()
        headers = {} if status == 200 else {"Retry-After": "1"}
        return JSONResponse(body, status_code=status, headers=headers)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(
            generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST
        )

    return router


def docs_root_router() -> APIRouter:
    """The bare address: a person lands on Swagger UI, a script reads where. Included after the
    service's own routers, so that a service with its own ``/`` (the console) keeps it."""
    router = APIRouter(tags=["health"])

    @router.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        """A person who opens the bare address lands on Swagger UI; a script reads where."""
        name = request.app.state.settings.service_name
        where = {"service": name, "docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}
        body = json.dumps(where)
        return Response(
            body, status_code=307, headers={"location": "/docs"}, media_type="application/json"
        )

    return router


class Readiness:
    """What ``/readyz`` answers, within a second whatever the load: the database probed on a
    connection of its own (never one from the request pool, which may be exhausted), and a
    service's own dependencies (``app.state.readiness``: async () -> dict), each bounded by
    ``PROBE_TIMEOUT_S``. A probe's answer is reused for ``CACHE_S``, and callers arriving while a
    probe runs share it, so a flood of probes costs one connection a second."""

    PROBE_TIMEOUT_S = 0.8
    CACHE_S = 1.0

    def __init__(self, app: FastAPI, engine: AsyncEngine) -> None:
        self.app = app
        self.engine = engine
        self._last: tuple[int, dict[str, Any]] | None = None
        self._at = 0.0
        self._probe_task: asyncio.Task[tuple[int, dict[str, Any]]] | None = None

    async def answer(self) -> tuple[int, dict[str, Any]]:
        if self._last is not None and time.monotonic() - self._at < self.CACHE_S:
            return self._last
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.create_task(self._probe(), name="readiness-probe")
        return await asyncio.shield(self._probe_task)

    async def _probe(self) -> tuple[int, dict[str, Any]]:
        extra = getattr(self.app.state, "readiness", None)
        database = database_ready(self.engine, self.PROBE_TIMEOUT_S)
        if extra is None:
            ok, detail = await database, None
        else:
            ok, detail = await asyncio.gather(database, self._extra(extra))
        body: dict[str, Any] = {
            "status": "ready" if ok else "database unreachable",
            "service": self.app.state.settings.service_name,
        }
        if detail is not None:
            body["detail"] = detail
        self._last, self._at = (200 if ok else 503, body), time.monotonic()
        return self._last

    async def _extra(self, probe: Callable[[], Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.PROBE_TIMEOUT_S):
                result: dict[str, Any] = await probe()
                return result
        except TimeoutError:
            return {"probe": f"no answer within {self.PROBE_TIMEOUT_S} s"}

    async def close(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._probe_task
        await self.engine.dispose()


def _revocation_watcher(app: FastAPI, settings: ServiceSettings) -> RevocationWatcher:
    """Setup reads its own tables (``app.state.revocation_loader`` and
    ``credential_revocation_loader``); the others ask setup."""
    factory = getattr(app.state, "revocation_loader", None)
    loader = factory(app) if factory is not None else http_loader(settings)
    factory = getattr(app.state, "credential_revocation_loader", None)
    credentials = factory(app) if factory is not None else http_credential_loader(settings)
    return RevocationWatcher(
        settings, app.state.edge_revocations, loader, app.state.key_ring, credentials
    )


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    extra_lifespan: ExtraLifespan | None = None,
    body_limits: dict[str, int] | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
    fast_path: Callable[[ASGIApp], ASGIApp] | None = None,
) -> FastAPI:
    """Build a service's ASGI app. The engine is created in the lifespan, after migrations."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            settings.service_name,
            level=settings.log_level,
            fmt=settings.log_format,
            secrets=settings.secret_values(),
        )
        if settings.migrate_on_start:
            await asyncio.to_thread(
                migrations.upgrade, settings.service_package, settings.database_url
            )
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            application_name=f"edge-{settings.service_name}",
            pool_timeout=settings.db_pool_timeout_s,
        )
        app.state.engine = engine
        app.state.ready = Readiness(
            app,
            create_probe_engine(
                settings.database_url,
                application_name=f"edge-{settings.service_name}",
                timeout=Readiness.PROBE_TIMEOUT_S,
            ),
        )
        app.state.sessionmaker = make_sessionmaker(engine)
        log.info("%s ready on port %s", settings.service_name, settings.port)
        if not settings.tls_cert_file:
            log.warning(
                "serving plain HTTP on %s:%s: for loopback development, or behind a "
                "TLS-terminating proxy, only (EDGE_TLS_CERT_FILE/EDGE_TLS_KEY_FILE serve HTTPS)",
                settings.host,
                settings.port,
            )
        watcher = _revocation_watcher(app, settings)
        keys = KeyWatcher(settings, app.state.key_ring)
        try:
            await keys.start()
            await watcher.start()
            if extra_lifespan is None:
                yield
            else:
                async with extra_lifespan(app):
                    yield
        finally:
            await watcher.stop()
            await keys.stop()
            await app.state.ready.close()
            await engine.dispose()

    app = ServiceApp(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        openapi_tags=openapi_tags,
        docs_url=None,  # served by shared.api_docs, from local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.edge_revocations = RevocationSet()  # kept fresh by a RevocationWatcher (lifespan)
    app.state.key_ring = settings.key_ring()  # setup's public keys, kept fresh by a KeyWatcher
    app.state.principals = PrincipalCache()  # what each bearer token proved (shared.auth)
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    inner = app.framework if fast_path is None else fast_path(app.framework)
    app.front = RequestContextMiddleware(
        inner,
        metrics=HttpMetrics(registry, settings.service_name),
        max_body_bytes=settings.max_body_bytes,
        body_limits=body_limits,
    )
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    app.include_router(docs_root_router())
    install_docs(app)
    _document_auth(app, settings.service_name)
    return app


def _document_auth(app: FastAPI, service: str) -> None:
    """Every operation of the OpenAPI document says who may call it (``x-auth``, shared.auth)."""
    from shared.auth import annotate_openapi, field_route_paths

    def openapi() -> dict[str, Any]:
        schema = FastAPI.openapi(app)  # cached by the framework; annotating twice changes nothing
        annotate_openapi(schema, list(app.routes), service)
        document_security_and_errors(schema, field_route_paths(list(app.routes)))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
