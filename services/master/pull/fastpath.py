"""A lean ASGI path for ``GET /edges/me/desired``: every pull agent of a site asks at once when
an update is published, so the answer is the precomputed set (``DesiredBoard.answer``) with its
tag as the ETag, and a bare 304 when the agent already has it (``If-None-Match``), without the
framework's routing and dependency machinery. It sits inside the shared request middleware
(request id, metrics). Anything it cannot answer from the board (no set yet, a refused token)
goes on to the FastAPI route (reconcile/pull_router.py), which answers it with the same rules.
"""

from __future__ import annotations

from typing import Any

from shared.errors import DomainError
from shared.middleware import HEADERS_KEY, RouteLabel

PATH = "/edges/me/desired"
_ROUTE = RouteLabel(PATH)


class DesiredFastPath:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != PATH:
            return await self.app(scope, receive, send)
        app = scope["app"]
        reconciler = getattr(app.state, "reconciler", None)  # set by Runners.install
        headers = scope.get(HEADERS_KEY) or dict(scope["headers"])  # the request layer's
        try:
            # The service's one cache: the agent's package request that follows is not proved
            # again (shared.auth.PrincipalCache).
            principal = app.state.principals.identify(app.state, headers)
        except DomainError:
            principal = None
        if reconciler is None or principal is None or principal.kind != "edge":
            return await self.app(scope, receive, send)  # its refusal, in the usual form
        assert principal.nid is not None
        answer = reconciler.pull.board.answer(principal.nid)
        if answer is None:
            return await self.app(scope, receive, send)  # no set yet: 503 or the empty one
        tag, body = answer
        scope["route"] = _ROUTE
        etag = f'"{tag}"'.encode()
        if etag in _tags(headers.get(b"if-none-match", b"")):
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
            await send({"type": "http.response.body", "body": b""})
            return None
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"etag", etag),
                    (b"cache-control", b"private, no-cache"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None


def _tags(header: bytes) -> set[bytes]:
    return {part.strip().removeprefix(b"W/") for part in header.split(b",") if part.strip()}
