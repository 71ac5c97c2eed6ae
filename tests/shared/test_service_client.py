"""The one client layer against a real HTTP server on loopback: errors mapped once, credentials
carried, notifications tracked, counted and drained on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from shared.errors import (
    Conflict,
    Invalid,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UpstreamError,
)
from shared.service_client import Outbox, OutboxMetrics, ServiceClient


class Thing(BaseModel):
    id: int
    name: str


def _peer_app(received: list[dict]) -> FastAPI:
    app = FastAPI()

    @app.get("/things/{code}")
    async def thing(code: int, request: Request) -> JSONResponse:
        if code == 200:
            auth = request.headers.get("authorization", "")
            return JSONResponse({"id": 1, "name": auth})
        if code == 201:
            return JSONResponse({"id": "not-a-number"})
        if code == 1000:
            return JSONResponse({"code": "1004", "message": "no such AI"}, status_code=404)
        body = {"error": {"type": "x", "message": f"status {code}", "field": "name"}}
        headers = {"Retry-After": "7"} if code == 503 else None
        return JSONResponse(body, status_code=code, headers=headers)

    @app.post("/events")
    async def events(request: Request) -> dict:
        event = await request.json()
        if event.get("slow"):
            await asyncio.sleep(0.2)
        received.append(event)
        return {}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_answers_and_errors_are_mapped_once() -> None:
    async with _serving(_peer_app([])) as url:
        client = ServiceClient("peer", url, token="caller-credential")
        try:
            thing = await client.model("GET", "/things/200", Thing)
            assert thing.name == "Bearer caller-credential"
            expected = {
                404: NotFound,
                409: Conflict,
                422: Invalid,
                400: Invalid,
                413: PayloadTooLarge,
                503: Unavailable,
                429: Unavailable,
                500: UpstreamError,
                401: UpstreamError,
                403: UpstreamError,
            }
            for status, error in expected.items():
                with pytest.raises(error) as caught:
                    await client.request("GET", f"/things/{status}", what="the thing")
                assert f"status {status}" in caught.value.message
                assert caught.value.message.startswith("the thing")
                if error is Invalid:
                    assert caught.value.field == "name"
            with pytest.raises(Unavailable) as caught:
                await client.request("GET", "/things/503")
            assert caught.value.headers["Retry-After"] == "7"
            # the field's envelope is read too
            with pytest.raises(NotFound, match="no such AI"):
                await client.request("GET", "/things/1000")
            # an allowed status is returned, not raised
            answer = await client.request("GET", "/things/404", allow=(404,))
            assert answer.status_code == 404
            # an answer that does not match its contract is the upstream's fault
            with pytest.raises(UpstreamError, match="does not match Thing"):
                await client.model("GET", "/things/201", Thing)
        finally:
            await client.aclose()


async def test_transport_failure_is_unavailable() -> None:
    client = ServiceClient("gone", f"http://127.0.0.1:{_free_port()}", token=None, timeout=2)
    try:
        with pytest.raises(Unavailable, match="gone unreachable"):
            await client.request("GET", "/anything")
    finally:
        await client.aclose()


async def test_outbox_delivers_counts_drops_and_drains() -> None:
    received: list[dict] = []
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry, "test")
    async with _serving(_peer_app(received)) as url:
        outbox = Outbox(ServiceClient("peer", url, token="t"), metrics=metrics, maxsize=3)
        outbox.start()
        assert outbox.send("/events", {"n": 0, "slow": True}, kind="k")
        await asyncio.sleep(0.05)  # the first is in flight, the queue is empty again
        assert all(outbox.send("/events", {"n": n}, kind="k") for n in (1, 2, 3))
        assert not outbox.send("/events", {"n": 4}, kind="k")  # full: dropped, counted
        assert outbox.send("/nowhere", {"n": 5}, kind="lost") is False  # full as well
        await outbox.stop(drain_timeout=5)  # drains what was queued before stopping
    assert [e["n"] for e in received] == [0, 1, 2, 3]

    def count(kind: str, outcome: str) -> float:
        value = registry.get_sample_value(
            "test_outbox_deliveries_total", {"target": "peer", "kind": kind, "outcome": outcome}
        )
        return value or 0.0

    assert count("k", "sent") == 4
    assert count("k", "dropped") == 1
    assert count("lost", "dropped") == 1
    assert registry.get_sample_value("test_outbox_queued", {"target": "peer"}) == 0


async def test_outbox_counts_failed_deliveries_and_keeps_going() -> None:
    received: list[dict] = []
    registry = CollectorRegistry()
    async with _serving(_peer_app(received)) as url:
        outbox = Outbox(
            ServiceClient("peer", url, token="t"), metrics=OutboxMetrics(registry, "t2")
        )
        outbox.start()
        outbox.send("/missing", {"n": 1}, kind="k")
        outbox.send("/events", {"n": 2}, kind="k")
        await outbox.stop(drain_timeout=5)
    assert [e["n"] for e in received] == [2]
    sample = registry.get_sample_value(
        "t2_outbox_deliveries_total", {"target": "peer", "kind": "k", "outcome": "failed"}
    )
    assert sample == 1
