"""Who may call the console (its app in-process on the test database; the other services are not
needed: every refusal here comes before a call to them). Every /api route of its OpenAPI document
answers 401 without a session; every change answers 403 without the session's CSRF token or from
another Origin; the pages send a browser without a session to the sign-in page; a wrong token
signs nobody in; sign-out ends the session on the server."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from services.console.app import create_app
from shared import migrations
from tests.conftest import running_app
from tests.helpers.env import OPERATOR_TOKEN, console_env, free_port, service_env, settings_for
from tests.helpers.processes import start_service

CHANGES = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def setup_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Setup as a process: it checks what the operator signs in with (the console holds no
    operator token)."""
    port = free_port()
    env = service_env(database_url, SETUP_NOTIFY_MASTER="false")
    proc = start_service("setup", env=env, port=port, tmp_path=tmp_path_factory.mktemp("setup"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture
async def console(database_url: str, setup_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await asyncio.to_thread(migrations.upgrade, "services.console", database_url)
    settings = settings_for("console", database_url, live_interval_s=60, setup_url=setup_url)
    async with running_app(create_app(settings)) as client:
        yield client


async def _sign_in(client: httpx.AsyncClient) -> str:
    r = await client.post("/login", data={"token": OPERATOR_TOKEN, "next": "/decisions"})
    assert r.status_code == 303 and r.headers["location"] == "/decisions"
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    page = await client.get("/decisions")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text)[1]


def _operations(doc: dict) -> list[tuple[str, str]]:
    out = []
    for path, operations in doc["paths"].items():
        if path.startswith("/api/"):
            filled = re.sub(r"\{\w+\}", "1", path)
            out.extend((method, filled) for method in operations)
    return out


async def test_every_api_route_needs_the_session_and_every_change_its_csrf(console):
    doc = (await console.get("/openapi.json")).json()
    operations = _operations(doc)
    assert len(operations) >= 20
    for method, path in operations:
        assert doc["paths"]  # documented as the session's rule
        r = await console.request(method.upper(), path)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"]["type"] == "unauthorized"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path.startswith("/api/"):
                assert op["x-auth"]["rule"] == "session", (method, path)
                expected = {"console_session": []}
                if method in CHANGES:
                    expected["console_csrf"] = []
                assert op["security"] == [expected], (method, path)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["console_csrf"] == {**schemes["console_csrf"], "in": "header"}
    assert schemes["console_csrf"]["name"] == "X-CSRF-Token"
    assert schemes["console_session"]["in"] == "cookie" and "bearer" not in schemes

    csrf = await _sign_in(console)
    for method, path in operations:
        if method not in CHANGES:
            continue
        r = await console.request(method.upper(), path, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["field"] == "X-CSRF-Token"
        r = await console.request(
            method.upper(),
            path,
            json={},
            headers={"X-CSRF-Token": csrf, "Origin": "http://elsewhere.example"},
        )
        assert r.status_code == 403 and "Origin" in r.json()["error"]["message"], (method, path)


async def test_pages_sign_in_and_out(console):
    # The console's own address is the console (its API docs stay at /docs).
    r = await console.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/fleet"
    r = await console.get("/fleet")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/fleet"
    assert (await console.get("/docs")).status_code == 200
    r = await console.get("/edges/3")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/edges/3"
    page = await console.get("/login?next=//evil.example/x")
    assert 'name="next" value="/fleet"' in page.text  # only the console's own paths
    assert "default-src 'self'" in page.headers["content-security-policy"]

    r = await console.post("/login", data={"token": "wrong-token-0123456789", "next": "/fleet"})
    assert r.status_code == 401 and "That is not the operator token." in r.text
    assert "set-cookie" not in r.headers
    r = await console.post(
        "/login", data={"token": OPERATOR_TOKEN}, headers={"Origin": "http://elsewhere.example"}
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers

    csrf = await _sign_in(console)
    page = await console.get("/fleet")
    assert page.status_code == 200 and OPERATOR_TOKEN not in page.text
    assert (await console.get("/api/session")).json() == {"signed_in": True}
    # Sign-out needs the page's CSRF token too.
    r = await console.post("/logout", data={"csrf": "forged"})
    assert r.status_code == 403
    assert (await console.get("/api/session")).status_code == 200
    kept = console.cookies["edge_console"]
    r = await console.post("/logout", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login?reason=signed-out"
    assert "edge_console" not in console.cookies
    # The old cookie no longer works, even if a browser kept it.
    console.cookies.set("edge_console", kept)
    r = await console.get("/api/session")
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    r = await console.get("/fleet")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/fleet&reason=expired"


async def test_a_node_id_is_validated_before_it_goes_upstream(console):
    """A path nid with a control character, or one that would rewrite the VMS's query (``?``,
    ``#`` escaped in the console's path), is refused with a 422 naming it; none reaches the VMS
    (which is not running here: a call to it would answer 502/503)."""
    await _sign_in(console)
    for nid in ("%0F", "0x21%3Fkind=detections%23", "0x21%20", "a" * 40):
        r = await console.get(f"/api/nodes/{nid}/series")
        assert r.status_code == 422, (nid, r.status_code, r.text)
        assert r.json()["error"]["field"] == "nid", r.text


async def test_signing_out_ends_the_open_live_streams_within_a_second(db, setup_url, tmp_path):
    """The console as a process (a real streaming connection): a fleet stream opened by a session
    ends with ``event: expired`` within a second of that session's sign-out, while it is quiet."""
    port = free_port()
    proc = start_service(
        "console",
        env=console_env(db, CONSOLE_LIVE_INTERVAL_S="60", EDGE_SETUP_URL=setup_url),
        port=port,
        tmp_path=tmp_path,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            csrf = await _sign_in(client)
            lines: list[str] = []
            ended = asyncio.Event()

            async def read() -> None:
                timeout = httpx.Timeout(10, read=None)
                async with client.stream("GET", "/api/fleet/events", timeout=timeout) as stream:
                    assert stream.status_code == 200
                    async for line in stream.aiter_lines():
                        lines.append(line)
                ended.set()

            reader = asyncio.create_task(read())
            try:
                await asyncio.sleep(1.0)
                assert not ended.is_set()
                r = await client.post("/logout", data={"csrf": csrf})
                assert r.status_code == 303
                signed_out = time.monotonic()
                await asyncio.wait_for(ended.wait(), 3)
                after = time.monotonic() - signed_out
                print(f"the stream ended {after:.3f} s after the sign-out")
                assert after < 1.0 and "event: expired" in lines
            finally:
                reader.cancel()
    finally:
        proc.stop()
