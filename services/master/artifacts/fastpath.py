"""A lean ASGI path for ``GET /artifacts/{digest}``: when a site-wide update is published, every
pull agent asks for the same package within the notice's spread, so a small archive is answered
from memory (``SmallArtifacts``), without the framework's routing, dependencies and the worker
thread ``FileResponse`` opens, reads and closes the file in.

It answers only the plain case: an edge's token (proved by the service's one principal cache), a
whole archive (no ``Range``/``If-Range``), of at most ``SmallArtifacts.max_file_bytes``, that the
edge's access view already allows (``ArtifactAccess.known``). Everything else (a range, a large
archive, an operator's token, an archive not in the view yet, a refused token, a malformed digest)
goes on to the FastAPI route (artifacts/router.py), which answers it with the same rules; the
headers here are the route's (ETag, Last-Modified, Accept-Ranges, Cache-Control,
Docker-Content-Digest) and the download is counted in the same update metric.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from shared.errors import DomainError, Invalid
from shared.middleware import HEADERS_KEY, RouteLabel

PREFIX = "/artifacts/"
_ROUTE = RouteLabel("/artifacts/{digest}")


@dataclass(frozen=True)
class _Held:
    size: int
    mtime: float
    headers: list[tuple[bytes, bytes]]
    body: bytes


class SmallArtifacts:
    """Small archives held in memory, the least recently served dropped first once they hold
    more than ``max_bytes`` in all. An archive's content never changes (its name is its digest);
    each answer checks the file still exists with the same size and time (a removed archive is
    not served from memory)."""

    def __init__(
        self, max_bytes: int, max_file_bytes: int, registry: CollectorRegistry | None = None
    ):
        self.max_bytes = max_bytes
        self.max_file_bytes = min(max_file_bytes, max_bytes)
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._bytes = 0
        self.gauge = Gauge(
            "master_artifact_memory_bytes",
            "Bytes of small package archives held in memory to serve edges from",
            registry=registry,
        )

    async def get(self, digest: str, path: Path) -> _Held | None:
        """The archive's answer, or None when it is not a small file here (then the route)."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        if stat.st_size > self.max_file_bytes or not self.max_bytes:
            return None
        held = self._held.get(digest)
        if held is not None and held.size == stat.st_size and held.mtime == stat.st_mtime:
            self._held.move_to_end(digest)
            return held
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError:
            return None
        if len(body) != stat.st_size:
            return None  # changed while read: the route streams it
        held = _Held(stat.st_size, stat.st_mtime, _headers(digest, stat.st_mtime, len(body)), body)
        self._keep(digest, held)
        return held

    def _keep(self, digest: str, held: _Held) -> None:
        old = self._held.pop(digest, None)
        if old is not None:
            self._bytes -= old.size
        self._held[digest] = held
        self._bytes += held.size
        while self._bytes > self.max_bytes and self._held:
            _, dropped = self._held.popitem(last=False)
            self._bytes -= dropped.size
        self.gauge.set(self._bytes)


def artifact_headers(digest: str, mtime: float) -> dict[str, str]:
    """The headers of a whole archive's answer, here and in the route: its digest names immutable
    content, so it is its own ETag and may be cached forever."""
    return {
        "ETag": f'"{digest}"',
        "Last-Modified": formatdate(mtime, usegmt=True),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
        "Docker-Content-Digest": digest,
    }


def _headers(digest: str, mtime: float, size: int) -> list[tuple[bytes, bytes]]:
    fixed = [(b"content-type", b"application/x-tar"), (b"content-length", str(size).encode())]
    named = artifact_headers(digest, mtime)
    return fixed + [(name.lower().encode(), value.encode()) for name, value in named.items()]


class ArtifactFastPath:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
        ):
            return await self.app(scope, receive, send)
        digest = scope["path"][len(PREFIX) :]
        held = await self._answer(scope, digest)
        if held is None:
            return await self.app(scope, receive, send)
        scope["route"] = _ROUTE
        await send({"type": "http.response.start", "status": 200, "headers": held.headers})
        await send({"type": "http.response.body", "body": held.body})
        return None

    async def _answer(self, scope: Any, digest: str) -> _Held | None:
        state = scope["app"].state
        small: SmallArtifacts | None = getattr(state, "small_artifacts", None)
        access = getattr(state, "artifact_access", None)  # set by Runners.install
        master = getattr(state, "master", None)  # set by the lifespan
        if small is None or access is None or master is None:
            return None
        try:
            path = master.store.path(digest)
        except Invalid:  # not sha256:<64 hex>: the route's 422
            return None
        headers = scope.get(HEADERS_KEY) or dict(scope["headers"])  # the request layer's
        if b"range" in headers or b"if-range" in headers:
            return None
        try:
            principal = state.principals.identify(state, headers)
        except DomainError:
            return None
        if principal.kind != "edge" or not access.known(principal.nid, digest):
            return None
        held = await small.get(digest, path)
        if held is not None:
            state.deltas.traffic.sent("full", held.size)
        return held
