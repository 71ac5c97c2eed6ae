"""Pure-ASGI middleware: request id, access log, Prometheus metrics and the body-size limit.

Pure ASGI (not BaseHTTPMiddleware) because the VMS ingest path is hot.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.errors import DomainError, PayloadTooLarge
from shared.input_checks import JSON_BODY_KEY, BodyCheck, check_target, is_field_route
from shared.legacy import FIELD_CODES
from shared.logging import request_id_var

log = logging.getLogger("edge.http")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry, service: str):
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.service = service
        # The labelled series a request lands on, found once per (method, route, status):
        # ``labels()`` costs a few microseconds a call, on every request of every service.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (
                self.requests.labels(self.service, method, route, str(status)),
                self.latency.labels(self.service, method, route),
            )
            self._series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(elapsed)


# Request ids: a random prefix per process and a counter (unique, and no uuid4 per request, whose
# os.urandom is a system call).
_RID_PREFIX = os.urandom(4).hex()
# Where the request's headers are left in the scope, as a dict of their raw pairs.
HEADERS_KEY = "edge.headers"
_RID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_RID_COUNTER) & 0xFFFFFFFF:08x}"


@dataclass(frozen=True)
class RouteLabel:
    """What a lean ASGI path ahead of the framework sets as ``scope["route"]``: the metrics label
    its request with this route template, as they would the framework's route."""

    path: str


def _route_template(scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path or "unmatched"


class RequestContextMiddleware:
    """Request id, access log and metrics for every request, and the input every service refuses
    before any route sees it: a body over the limit (413, reading stops at the limit), NUL
    characters, unpaired surrogates and integers beyond 64 bits (422 naming the field; see
    shared.input_checks). A refusal answers in the project's error model, or in the field's
    envelope on a field route; whatever the app would have answered instead is discarded."""

    def __init__(
        self,
        app,
        *,
        metrics: HttpMetrics,
        max_body_bytes: int,
        body_limits: dict[str, int] | None = None,
    ):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits or {}
        self._limits: dict[str, int] = {}  # by path, bounded: paths come from clients

    def _limit_for(self, path: str) -> int:
        limit = self._limits.get(path)
        if limit is not None:
            return limit
        limit = next(
            (n for prefix, n in self.body_limits.items() if path.startswith(prefix)),
            self.max_body_bytes,
        )
        if len(self._limits) >= 1024:
            self._limits.clear()
        self._limits[path] = limit
        return limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        scope[HEADERS_KEY] = headers  # for what runs behind, that would make the same dict
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or new_request_id()
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status_holder = {"status": 500}
        try:
            refused = check_target(scope)
            if refused is not None:
                status_holder["status"] = refused.status_code
                await _refuse(scope, send, refused, rid)
                return
            await self._run(scope, receive, send, headers, rid, status_holder)
        finally:
            self._observe(scope, started, status_holder["status"])
            request_id_var.reset(token)

    async def _run(
        self, scope, receive, send, headers: dict, rid: str, status_holder: dict
    ) -> None:
        limit = self._limit_for(scope["path"])
        declared = headers.get(b"content-length")
        over_declared = declared is not None and declared.isdigit() and int(declared) > limit
        body_check = BodyCheck.for_content_type(headers.get(b"content-type", b""))
        refusal: list[DomainError] = []  # set once: the answer the client gets
        app_answered = False
        received = 0

        def refuse(error: DomainError) -> DomainError:
            if not refusal:
                refusal.append(error)
            return refusal[0]

        def too_large() -> DomainError:  # built when needed only (most requests are not)
            return refuse(
                PayloadTooLarge(f"request body is over the limit of {limit} bytes", field="body")
            )

        async def checked_receive():
            nonlocal received
            if refusal:
                raise refusal[0]  # the app asks again after a refusal: never read on
            if over_declared:
                raise too_large()
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise too_large()
                if body_check is not None:
                    body_check.feed(chunk)
                    if not message.get("more_body", False):
                        body, problem = body_check.finish()
                        if body_check.kind == "json":
                            scope[JSON_BODY_KEY] = body
                        route = scope.get("route")
                        if problem is not None and not getattr(route, "judges_each_record", False):
                            raise refuse(problem)
            return message

        async def send_wrapper(message):
            nonlocal app_answered
            if message["type"] == "http.response.start":
                if refusal:
                    return  # the app's answer to our refusal: ours goes out instead
                app_answered = True
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *_common_headers(rid)]
            elif not app_answered:
                return
            await send(message)

        try:
            await self.app(scope, checked_receive, send_wrapper)
        except Exception:
            if not refusal or app_answered:
                raise
        if refusal and not app_answered:
            status_holder["status"] = refusal[0].status_code
            await _refuse(scope, send, refusal[0], rid)

    def _observe(self, scope, started: float, status: int) -> None:
        elapsed = time.perf_counter() - started
        route = _route_template(scope)
        self.metrics.observe(scope["method"], route, status, elapsed)
        if route not in ("/healthz", "/readyz", "/metrics"):
            log.debug(
                "%s %s -> %s in %.1f ms", scope["method"], scope["path"], status, elapsed * 1000
            )


def _common_headers(rid: str) -> list[tuple[bytes, bytes]]:
    """On every answer: the request id, and no content-type sniffing by browsers."""
    return [(b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff")]


async def _refuse(scope, send, error: DomainError, rid: str) -> None:
    """Answer ``error`` in the field's envelope on a field route, else in the project's model."""
    if is_field_route(scope):
        text = f"{error.field}: {error.message}" if error.field else error.message
        payload: dict = {"code": FIELD_CODES.get(error.status_code, "1500"), "message": text}
    else:
        payload = {"error": error.to_dict()}
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_common_headers(rid),
    ]
    if isinstance(error, PayloadTooLarge):
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
