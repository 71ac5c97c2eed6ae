"""Pure-ASGI middleware: request id, access log, Prometheus metrics and the body-size limit.

Pure ASGI (not BaseHTTPMiddleware) because the VMS ingest path is hot.
"""
from __future__ import annotations

import json
import logging
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.logging import request_id_var

log = logging.getLogger("edge.http")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry, service: str):
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["service", "method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.service = service


def _route_template(scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path or "unmatched"


class RequestContextMiddleware:
    def __init__(self, app, *, metrics: HttpMetrics, max_body_bytes: int, body_limits: dict[str, int] | None = None):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits or {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.body_limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status_holder = {"status": 500}
        limit = self._limit_for(scope["path"])

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(send, limit, rid)
            status_holder["status"] = 413
            self._observe(scope, started, 413)
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            status_holder["status"] = 413
            await self._too_large(send, limit, rid)
        finally:
            self._observe(scope, started, status_holder["status"])
            request_id_var.reset(token)

    def _observe(self, scope, started: float, status: int) -> None:
        elapsed = time.perf_counter() - started
        route = _route_template(scope)
        m = self.metrics
        m.requests.labels(m.service, scope["method"], route, str(status)).inc()
        m.latency.labels(m.service, scope["method"], route).observe(elapsed)
        if route not in ("/healthz", "/readyz", "/metrics"):
            log.debug("%s %s -> %s in %.1f ms", scope["method"], scope["path"], status, elapsed * 1000)

    @staticmethod
    async def _too_large(send, limit: int, rid: str) -> None:
        body = json.dumps(
            {"error": {"type": "payload_too_large", "message": f"request body is over the limit of {limit} bytes", "field": "body"}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"x-request-id", rid.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
