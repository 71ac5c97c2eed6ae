"""A lean ASGI path for the hot ingest routes (POST /usage, /save_edgeData, /detections, /batch).

Every edge posts every second, so per-request overhead is the VMS's throughput. This sits inside
the shared request middleware (request id, metrics, body limit) and answers the ingest routes
directly with the same service, skipping the framework's routing and dependency machinery.
It is the one path for our /detections and /batch (ingest/router.py only documents them); the
field's posts with form fields or a query string go on to the FastAPI routes of ingest/router.py,
which answer with the same status codes and bodies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from services.vms.ingest.schemas import free_of_nul
from services.vms.ingest.service import IngestService, Rejected
from shared.errors import DomainError
from shared.legacy import FIELD_CODES, SUCCESS
from shared.middleware import HEADERS_KEY

log = logging.getLogger("edge.vms.fastpath")

_SUCCESS_BODY = b'{"code":"0000","message":"success"}'


@dataclass(frozen=True)
class _Route:
    path: str  # what the metrics middleware labels the request with
    kind: str | None  # None: /batch
    legacy: bool

    @property
    def field_envelope(self) -> bool:  # read by the shared request layer (input_checks)
        return self.legacy

    @property
    def judges_each_record(self) -> bool:
        # /batch: a record with a NUL is reported on its own (the others stored), not the whole
        # body refused by the shared request layer.
        return self.kind is None


ROUTES = {
    "/usage": _Route("/usage", "usage", True),
    "/save_edgeData": _Route("/save_edgeData", "environment", True),
    "/detections": _Route("/detections", "detections", False),
    "/batch": _Route("/batch", None, False),
}


class IngestFastPath:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        route = (
            ROUTES.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if route is None:
            return await self.app(scope, receive, send)
        headers = scope.get(HEADERS_KEY) or dict(scope["headers"])
        if route.legacy and (
            scope.get("query_string") or b"form" in headers.get(b"content-type", b"")
        ):
            return await self.app(scope, receive, send)
        scope["route"] = route
        app = scope["app"]
        body = await _read_body(receive)
        status, payload, extra = await self._handle(app, route, headers, body)
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        response_headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    async def _handle(
        self, app, route: _Route, headers: dict, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        service: IngestService = app.state.ingest
        try:
            principal = app.state.principals.identify(app.state, headers)  # the service's one
            if route.legacy and route.kind is not None:
                data = IngestService.parse_json(body) if body else {}
                nul_free = free_of_nul(body)
                await service.ingest_one(
                    principal, route.kind, data, legacy=True, nul_free=nul_free
                )
                return 200, _SUCCESS_BODY, {}
            if not body:
                raise Rejected("a JSON body is required", field="body", reason="invalid")
            data = IngestService.parse_json(body)
            if route.kind is None:  # /batch
                answer = await service.ingest_batch(principal, data, nul_free=free_of_nul(body))
                return 200, orjson.dumps(answer), {}
            record = await service.ingest_one(
                principal, route.kind, data, legacy=False, nul_free=free_of_nul(body)
            )
            answer = {
                "code": SUCCESS,
                "message": "success",
                "status": "stored",
                "nid": record.nid,
                "known": record.known,
            }
            return 200, orjson.dumps(answer), {}
        except DomainError as exc:
            if route.legacy:
                text = f"{exc.field}: {exc.message}" if exc.field else exc.message
                return (
                    exc.status_code,
                    orjson.dumps(
                        {"code": FIELD_CODES.get(exc.status_code, "1500"), "message": text}
                    ),
                    exc.headers,
                )
            return exc.status_code, orjson.dumps({"error": exc.to_dict()}), exc.headers
        except Exception:
            log.exception("unhandled error on %s", route.path)
            if route.legacy:
                return 500, b'{"code":"1500","message":"internal error"}', {}
            return 500, b'{"error":{"type":"internal","message":"internal error"}}', {}


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # http.disconnect: what came so far
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
