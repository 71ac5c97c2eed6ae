"""Open streams (Server-Sent Events, WebSockets) that end when the credential that opened them does.

A stream outlives the request that authorised it: a token rotated, an edge deleted, a console
session signed out or expired must close the streams it opened too, not only refuse the next
request. Each stream here is watched by a check (``Alive``) run every ``every`` seconds, however
quiet the stream is: an SSE stream then sends its farewell event and ends, a WebSocket closes with
1008 (policy violation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import WebSocket
from starlette.websockets import WebSocketState

log = logging.getLogger("edge.streams")

T = TypeVar("T")
Alive = Callable[[], Awaitable[bool]]

CHECK_EVERY_S = 0.25  # well within the second a revocation may take to close a stream
_DONE = object()


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error


async def until_revoked(
    stream: AsyncIterator[T], alive: Alive, farewell: T, *, every: float = CHECK_EVERY_S
) -> AsyncIterator[T]:
    """``stream`` item by item while ``alive()`` holds; once it does not, ``farewell`` and the end.

    The stream is read by a task of its own into a queue, so the check runs on time even while
    the stream waits for its next item; the task is cancelled (and the stream closed) on the way
    out, whatever ends the stream."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for item in stream:
                await queue.put(item)
        except Exception as exc:  # handed to the reader, raised where the stream is read
            await queue.put(_Failed(exc))
            return
        await queue.put(_DONE)

    reader = asyncio.create_task(pump())
    try:
        while True:
            if not await alive():
                yield farewell
                return
            try:
                item = await asyncio.wait_for(queue.get(), timeout=every)
            except TimeoutError:
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def serve_until_revoked(
    websocket: WebSocket,
    serve: Coroutine[Any, Any, None],
    alive: Alive,
    *,
    reason: str,
    every: float = CHECK_EVERY_S,
) -> None:
    """Runs ``serve`` (the accepted socket's loop) while ``alive()`` holds; once it does not, the
    loop is cancelled and the socket closed with 1008 and ``reason``."""

    async def watch() -> None:
        while True:
            if not await alive():
                return
            await asyncio.sleep(every)

    loop = asyncio.create_task(serve)
    guard = asyncio.create_task(watch())
    try:
        done, _ = await asyncio.wait({loop, guard}, return_when=asyncio.FIRST_COMPLETED)
        if guard in done and loop not in done:
            log.info("closing a WebSocket: %s", reason)
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            if websocket.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(RuntimeError, OSError):
                    await websocket.close(code=1008, reason=reason)
        else:
            await loop  # its own error, if any
    finally:
        for task in (loop, guard):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
