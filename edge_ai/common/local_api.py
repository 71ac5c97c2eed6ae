"""A very small HTTP/1.1 JSON server for the program's local API (operator value, routing, status).

asyncio streams instead of a web framework: the edge images stay small and nothing heavy is
imported. It understands exactly what the programs need: a method, a path, a JSON body with a
Content-Length, one request per connection. Listens on loopback by default (EDGE_API_HOST).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Awaitable, Callable, Tuple, Union

log = logging.getLogger("edge_ai.api")

# typing's generics: a module-level alias is evaluated on Python 3.8 too.
Handler = Callable[[Any], Union[Awaitable[Tuple[int, Any]], Tuple[int, Any]]]
MAX_BODY = 64 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class LocalApi:
    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._routes: dict[tuple[str, str], Handler] = {}
        self._texts: dict[str, Callable[[], str]] = {}
        self._server: asyncio.base_events.Server | None = None

    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def text(self, path: str, render: Callable[[], str]) -> None:
        """A GET route answering plain text (the Prometheus exposition of /metrics)."""
        self._texts[path] = render

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("local API on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body, ctype = await asyncio.wait_for(self._respond(reader), 10)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError, ValueError):
            writer.close()
            return
        payload = body.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + payload)
            await writer.drain()
        writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, str]:
        request_line = (await reader.readuntil(b"\r\n")).decode("latin-1").strip()
        method, target, _version = request_line.split(" ", 2)
        length = 0
        while True:
            line = (await reader.readuntil(b"\r\n")).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY:
            return _json(413, {"detail": f"body over {MAX_BODY} bytes"})
        raw = await reader.readexactly(length) if length else b""
        path = target.split("?", 1)[0]
        if method == "GET" and path in self._texts:
            return 200, self._texts[path](), "text/plain; version=0.0.4"
        handler = self._routes.get((method, path))
        if handler is None:
            known = any(p == path for _m, p in self._routes) or path in self._texts
            return _json(405 if known else 404, {"detail": f"{method} {path} not supported"})
        try:
            data = json.loads(raw) if raw else None
        except ValueError as exc:
            return _json(400, {"detail": f"body is not JSON: {exc}"})
        try:
            outcome = handler(data)
            result = await outcome if isinstance(outcome, Awaitable) else outcome
        except Exception:  # the API must not take the program down
            log.exception("local API handler %s %s failed", method, path)
            return _json(500, {"detail": "internal error"})
        status, obj = result
        return _json(status, obj)


def _json(status: int, obj: Any) -> tuple[int, str, str]:
    return status, json.dumps(obj), "application/json"


def prometheus_text(
    prefix: str, values: dict[str, float | int | bool], help_: dict[str, str] | None = None
) -> str:
    lines = []
    for name, value in values.items():
        metric = f"{prefix}_{name}"
        if help_ and name in help_:
            lines.append(f"# HELP {metric} {help_[name]}")
        lines.append(f"{metric} {float(value)}")
    return "\n".join(lines) + "\n"
