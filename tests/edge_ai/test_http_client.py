"""The edge side's one client layer (edge_ai/common/http.py) against a real HTTP server on
loopback: credentials carried, answers and failures turned into one CallFailed, the same for the
async client (agent, programs) and the blocking one (edgectl)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge_ai.common.http import CallFailed, EdgeClient, EdgeSyncClient
from tests.helpers.env import free_port


class _Peer(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/me":
            self._answer(200, {"auth": self.headers.get("Authorization", "")})
        elif self.path == "/busy":
            self._answer(
                503,
                {"error": {"type": "unavailable", "message": "queue full"}},
                {"Retry-After": "7"},
            )
        elif self.path == "/field":
            self._answer(404, {"code": "1004", "message": "no such AI"})
        elif self.path == "/text":
            self._answer(200, b"not json")
        else:
            refusal = {"type": "invalid", "message": "too long", "field": "name"}
            self._answer(422, {"error": refusal})


@pytest.fixture(scope="module")
def peer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_blocking_client_answers_and_failures(peer: str) -> None:
    with EdgeSyncClient("setup", peer, token="t0k") as setup:
        assert setup.json("GET", "/me") == {"auth": "Bearer t0k"}
        with pytest.raises(CallFailed) as refused:
            setup.json("GET", "/names")
        assert (refused.value.status, refused.value.field) == (422, "name")
        assert refused.value.detail == "too long (name)" and not refused.value.retry_later
        assert str(refused.value) == "setup GET /names: answered 422: too long"
        with pytest.raises(CallFailed) as busy:
            setup.request("GET", "/busy")
        assert busy.value.retry_after == 7.0 and busy.value.retry_later
        with pytest.raises(CallFailed) as field:
            setup.request("GET", "/field")
        assert (field.value.status, field.value.message) == (404, "no such AI")
        assert setup.request("GET", "/field", allow=(404,)).status_code == 404
        with pytest.raises(CallFailed, match="not JSON"):
            setup.json("GET", "/text")
    with EdgeSyncClient("setup", f"http://127.0.0.1:{free_port()}") as gone:
        with pytest.raises(CallFailed) as down:
            gone.request("GET", "/me")
        assert down.value.unreachable and down.value.retry_later
        assert "ConnectError" in down.value.message


async def test_async_client_answers_streams_and_failures(peer: str) -> None:
    async with EdgeClient("master", peer, token="edge") as master:
        assert await master.json("GET", "/me") == {"auth": "Bearer edge"}
        async with master.stream("GET", "/me") as response:
            assert b"Bearer edge" in await response.aread()
        with pytest.raises(CallFailed) as busy:
            async with master.stream("GET", "/busy"):
                pass
        assert (busy.value.status, busy.value.retry_after) == (503, 7.0)
        with pytest.raises(CallFailed) as refused:
            await master.request("POST", "/x", json={})
        assert refused.value.status == 501  # the peer has no POST: http.server's own answer
    async with EdgeClient("master", f"http://127.0.0.1:{free_port()}") as gone:
        with pytest.raises(CallFailed) as down:
            await gone.json("GET", "/me")
        assert down.value.unreachable
