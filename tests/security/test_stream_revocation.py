"""Open streams end with the credential that opened them (issue 25, items 1 and 2).

Setup and the analysis gateway run as processes on the shared Postgres; an edge opens the
camera-frame WebSocket and its video's Server-Sent Events stream, the operator rotates the edge's
token through setup, and both streams must close within a second (WebSocket close code 1008, the
SSE stream's last event ``end`` with status ``revoked``). A rotated, a deleted and a reused-nid
token are refused at the handshake. Nothing here polls: the gateway learns of the revocation by
setup's NOTIFY (``revocations_refresh_s`` is an hour).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.analysis.conftest import prefix as prefix  # the fixture
from tests.analysis.test_videos import make_video
from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import start_service
from tests.vms.test_edge_token_revocation import bearer, register
from tests.vms.test_with_setup import setup_url as setup_url  # the fixture

CLOSE_WITHIN_S = 1.0


@pytest.fixture
def gateway_url(db: str, prefix: str, setup_url: str, tmp_path: Path):
    port = free_port()
    env = service_env(
        db,
        EDGE_SETUP_URL=setup_url,
        EDGE_REDIS_URL="redis://127.0.0.1:6379/0",
        ANALYSIS_KEY_PREFIX=prefix,
        ANALYSIS_VIDEO_DIR=str(tmp_path / "videos"),
        ANALYSIS_RATE_PER_S="0",
        EDGE_REVOCATIONS_REFRESH_S="3600",
    )
    proc = start_service("analysis", env=env, port=port, tmp_path=tmp_path)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/frames"


async def open_socket(base: str, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(ws_url(base), additional_headers=bearer(token))
    # It serves: a text message is answered with the frame-format error (no worker needed).
    await ws.send("not a frame")
    answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert answer["error"]["field"] == "frame"
    return ws


async def refused_at_handshake(base: str, token: str) -> None:
    try:
        ws = await websockets.connect(ws_url(base), additional_headers=bearer(token))
    except InvalidStatus as exc:  # refused before the upgrade (a 403)
        assert exc.response.status_code in (401, 403)
        return
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_rotation_closes_the_open_websocket_and_sse_stream_within_a_second(
    setup_url, gateway_url, tmp_path
):
    edge_id, token = register(setup_url, "EdgeCCTV01", "0x01")
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        r = await client.post(
            "/videos",
            content=make_video(tmp_path / "in.mp4", frames=3),
            headers={**bearer(token), "Content-Type": "video/mp4"},
        )
        assert r.status_code == 202, r.text
        events_url = r.json()["events"]  # no worker: the stream waits, open, for its frames

        ws = await open_socket(gateway_url, token)
        sse_lines: list[str] = []
        sse_ended = asyncio.Event()

        async def read_sse() -> None:
            async with client.stream(
                "GET", events_url, headers=bearer(token), timeout=httpx.Timeout(10, read=None)
            ) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    sse_lines.append(line)
            sse_ended.set()

        reader = asyncio.create_task(read_sse())
        try:
            await asyncio.sleep(1.0)  # both open and quiet
            assert not sse_ended.is_set() and not reader.done()

            async with httpx.AsyncClient(base_url=setup_url, timeout=10) as setup:
                r = await setup.post(f"/edges/{edge_id}/token", headers=OPERATOR)
                assert r.status_code == 200, r.text
                new = r.json()["token"]
            rotated = time.monotonic()

            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), CLOSE_WITHIN_S + 1)
            ws_after = time.monotonic() - rotated
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            await asyncio.wait_for(sse_ended.wait(), CLOSE_WITHIN_S + 1)
            sse_after = time.monotonic() - rotated
            print(
                f"after the rotation: WebSocket closed in {ws_after:.3f} s, "
                f"SSE in {sse_after:.3f} s"
            )
            assert ws_after < CLOSE_WITHIN_S and sse_after < CLOSE_WITHIN_S
            assert "event: end" in sse_lines and '"status": "revoked"' in "".join(sse_lines)
        finally:
            reader.cancel()
            await ws.close()

        # The old token is refused at the handshake and on the stream; the new one works.
        await refused_at_handshake(gateway_url, token)
        r = await client.get(events_url, headers=bearer(token))
        assert r.status_code == 401, r.text
        ws = await open_socket(gateway_url, new)

        # Deleting the edge closes the new token's socket too ...
        async with httpx.AsyncClient(base_url=setup_url, timeout=10) as setup:
            assert (await setup.delete(f"/edges/{edge_id}", headers=OPERATOR)).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), CLOSE_WITHIN_S + 1)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await refused_at_handshake(gateway_url, new)

        # ... and a new edge given the same nid does not revive the deleted edge's tokens.
        _, reused = register(setup_url, "EdgeCCTV01b", "0x01")
        await refused_at_handshake(gateway_url, new)
        ws = await open_socket(gateway_url, reused)
        await ws.close()
