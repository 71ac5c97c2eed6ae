"""Issue 25's low items on a service as a real process (the analysis gateway, no worker):
authentication before the body is read, nosniff on every answer, no inline script on the API
documentation pages."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.analysis.conftest import drop_keys
from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import Proc, start_service


@pytest.fixture(scope="module")
def analysis(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = f"edgesec:{uuid.uuid4().hex[:10]}"
    env = service_env(
        database_url,
        EDGE_MIGRATE_ON_START="false",
        ANALYSIS_KEY_PREFIX=prefix,
        ANALYSIS_VIDEO_DIR=str(tmp_path_factory.mktemp("videos")),
        ANALYSIS_MAX_BODY_BYTES=str(16 * 1024 * 1024),
    )
    port = free_port()
    proc: Proc = start_service(
        "analysis", env=env, port=port, tmp_path=tmp_path_factory.mktemp("a")
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        drop_keys(prefix)


def test_an_anonymous_upload_is_refused_before_its_body_is_read(analysis: str) -> None:
    """15 MB declared, 64 KB sent: the 401 comes without waiting for the rest."""
    port = int(analysis.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {15 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"\xff" * 65536)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)  # a server reading the whole body first times out here
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_every_answer_says_nosniff(analysis: str) -> None:
    with httpx.Client(base_url=analysis, timeout=10) as client:
        answers = [
            client.get("/healthz"),
            client.get("/openapi.json"),
            client.get("/no-such-route"),
            client.get("/jobs/abc", headers=OPERATOR),  # a domain error
            client.get("/docs"),
            client.get("/docs/assets/swagger-ui-bundle.js"),
            client.post("/analyze", content=b"x" * (17 * 1024 * 1024), headers=OPERATOR),  # 413
        ]
    assert [a.status_code for a in answers][-1] == 413
    for a in answers:
        assert a.headers.get("x-content-type-options") == "nosniff", (a.url, a.status_code)


def test_the_documentation_pages_hold_no_inline_script(analysis: str) -> None:
    with httpx.Client(base_url=analysis, timeout=10) as client:
        for page in ("/docs", "/redoc"):
            r = client.get(page)
            assert r.status_code == 200
            policy = r.headers["content-security-policy"]
            scripts = re.search(r"script-src ([^;]*)", policy)[1]
            assert "unsafe-inline" not in scripts and "unsafe-eval" not in scripts, policy
            tags = re.findall(r"<script([^>]*)>(.*?)</script>", r.text, re.S)
            assert tags and all("src=" in attrs and not body.strip() for attrs, body in tags)
            for attrs, _ in tags:
                src = re.search(r'src="([^"]+)"', attrs)[1]
                assert client.get(src).status_code == 200, src
