"""The optimizer's probe of the analysis service, against a real HTTP server: down (nothing
listening, 5xx) or throttling (429) is trouble, which sends routed edges back to local analysis
(tests/optimizer/test_engine.py: the policies' side)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.optimizer.settings import OptimizerSettings
from services.optimizer.sources.clients import AnalysisProbe
from tests.helpers.env import free_port


class _Service:
    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                code = outer.status if self.path == "/healthz" else 404
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def settings(**over: str) -> OptimizerSettings:
    return OptimizerSettings(EDGE_ENV="local", **over)


@pytest.fixture
def service():
    s = _Service()
    yield s
    s.close()


async def test_down_or_throttling_is_trouble_and_recovery_clears_it(service):
    probe = AnalysisProbe(settings(EDGE_ANALYSIS_URL=service.url), interval_s=0)
    try:
        assert await probe.trouble() is None
        service.status = 429
        assert await probe.trouble() == "the analysis service throttles (429)"
        service.status = 503
        assert await probe.trouble() == "the analysis service is down (it answered 503)"
        service.status = 200
        assert await probe.trouble() is None
    finally:
        await probe.aclose()
    dead = AnalysisProbe(
        settings(EDGE_ANALYSIS_URL=f"http://127.0.0.1:{free_port()}"), interval_s=0
    )
    try:
        assert await dead.trouble() == "the analysis service is down (ConnectError)"
    finally:
        await dead.aclose()


async def test_probed_at_most_every_interval_and_not_without_a_service(service):
    probe = AnalysisProbe(settings(EDGE_ANALYSIS_URL=service.url), interval_s=60)
    try:
        for _ in range(5):
            assert await probe.trouble() is None
        assert service.hits == 1
    finally:
        await probe.aclose()
    # No analysis service configured (edges post to their VMS inbox): nothing to probe.
    idle = AnalysisProbe(settings())
    assert idle.client is None and await idle.trouble() is None
    await idle.aclose()
