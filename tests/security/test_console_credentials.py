"""The console holds no operator root, and signed credentials are revocable one by one (issue 25,
item 5): setup, the VMS and the console as processes on the test database.

- The console's process environment holds no operator token, only its own credential; signing in
  with the operator token (or an operator credential) still works, and a session's calls reach
  the services with a short-lived operator credential setup issued for that session.
- That credential (taken from the console's database with the session's cookie, as a thief
  holding both would) stops working at setup and at the VMS as soon as the session signs out.
- A service credential and an operator credential, each revoked alone by serial (`edgectl
  credentials revoke`), are refused by setup and the VMS while another of the same kind still
  works; setup lists the revoked serials on its open GET /keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.console.sessions import unseal
from shared.credentials import decode_credential
from tests.helpers.database import asyncpg_url
from tests.helpers.env import (
    KEYS,
    OPERATOR,
    OPERATOR_TOKEN,
    console_env,
    free_port,
    service_env,
)
from tests.helpers.processes import Proc, edgectl, start_service

REFUSED_WITHIN_S = 3.0  # pushed at commit (Postgres NOTIFY): in practice milliseconds


@dataclass
class Platform:
    setup: str
    vms: str
    console: str
    console_proc: Proc
    database_url: str
    tmp: Path


@pytest.fixture(scope="module")
def platform(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("console-credentials")
    ports = {name: free_port() for name in ("setup", "vms", "console")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = {"EDGE_SETUP_URL": urls["setup"], "EDGE_VMS_URL": urls["vms"]}
    procs: list[Proc] = []
    try:
        for name, env in (
            ("setup", service_env(database_url, SETUP_NOTIFY_MASTER="false", **common)),
            ("vms", service_env(database_url, VMS_UNKNOWN_NODES="flag", **common)),
            ("console", console_env(database_url, CONSOLE_LIVE_INTERVAL_S="60", **common)),
        ):
            procs.append(start_service(name, env=env, port=ports[name], tmp_path=tmp))
        yield Platform(urls["setup"], urls["vms"], urls["console"], procs[-1], database_url, tmp)
    finally:
        for proc in procs:
            proc.stop()


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
    return {name: value for name, _, value in pairs}


async def _sign_in(console: httpx.AsyncClient, secret: str) -> str:
    r = await console.post("/login", data={"token": secret, "next": "/fleet"})
    assert r.status_code == 303, r.text
    page = await console.get("/fleet")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text)[1]


async def _session_credential(platform: Platform, cookie: str) -> str:
    """The session's operator credential, as someone holding the console's database and the
    session's cookie would get it (the table alone holds it sealed)."""
    conn = await asyncpg.connect(asyncpg_url(platform.database_url))
    try:
        sealed = await conn.fetchval(
            "SELECT credential FROM console.sessions WHERE token_hash = $1",
            hashlib.sha256(cookie.encode()).hexdigest(),
        )
    finally:
        await conn.close()
    assert sealed and "opr_" not in sealed
    credential = unseal(cookie, sealed)
    assert credential is not None and credential.startswith("opr_")
    return credential


async def _status(url: str, path: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        return r.status_code


async def _refused_everywhere(platform: Platform, token: str) -> float:
    """Seconds until setup and the VMS both answer 401 to ``token``."""
    start = time.monotonic()
    while True:
        statuses = (
            await _status(platform.setup, "/edges", token),
            await _status(platform.vms, "/nodes/state", token),
        )
        if statuses == (401, 401):
            return time.monotonic() - start
        assert time.monotonic() - start < REFUSED_WITHIN_S, statuses
        await asyncio.sleep(0.05)


async def test_the_console_holds_no_operator_token_and_a_session_credential_dies_at_sign_out(
    platform: Platform,
):
    environment = _environment(platform.console_proc.pid)
    assert "EDGE_OPERATOR_TOKEN" not in environment
    assert "EDGE_OPERATOR_TOKEN_SHA256" not in environment
    assert OPERATOR_TOKEN not in "\n".join(environment.values())
    assert environment["EDGE_CONSOLE_TOKEN"].startswith("svc_console.")

    async with httpx.AsyncClient(base_url=platform.console, timeout=10) as console:
        r = await console.post("/login", data={"token": "not-the-operator-token-0123"})
        assert r.status_code == 401 and "That is not the operator token." in r.text
        csrf = await _sign_in(console, OPERATOR_TOKEN)
        # A page's call goes through to the VMS with the session's credential.
        r = await console.get("/api/clips")
        assert r.status_code == 200, r.text
        credential = await _session_credential(platform, console.cookies["edge_console"])
        claims = decode_credential(credential, KEYS)
        assert claims is not None and claims.kind == "operator"
        assert claims.expires_at <= time.time() + 12 * 3600 + 5  # the session's lifetime
        assert await _status(platform.setup, "/edges", credential) == 200
        assert await _status(platform.vms, "/nodes/state", credential) == 200

        r = await console.post("/logout", data={"csrf": csrf})
        assert r.status_code == 303
        after = await _refused_everywhere(platform, credential)
        print(f"the session's credential refused by setup and the VMS {after:.3f} s after sign-out")
        async with httpx.AsyncClient(base_url=platform.setup) as setup:
            r = await setup.get("/edges", headers={"Authorization": f"Bearer {credential}"})
            assert "revoked" in r.json()["error"]["message"]
            listed = {e["serial"] for e in (await setup.get("/keys")).json()["revoked"]}
        assert claims.serial in listed

        # An operator credential signs in too; the session's credential never outlives it.
        async with httpx.AsyncClient(base_url=platform.setup) as setup:
            r = await setup.post(
                "/credentials", json={"kind": "operator", "ttl_days": 1}, headers=OPERATOR
            )
        operator_credential = r.json()["token"]
        await _sign_in(console, operator_credential)
        session = await _session_credential(platform, console.cookies["edge_console"])
        own = decode_credential(session, KEYS)
        presented = decode_credential(operator_credential, KEYS)
        assert own is not None and presented is not None and own.serial != presented.serial
        assert own.expires_at <= presented.expires_at
        assert (await console.get("/api/clips")).status_code == 200


async def test_the_console_credential_cannot_open_a_session_without_the_operator_secret(
    platform: Platform,
):
    """The console's own credential: reads, and sessions only for the one who knows the
    operator's secret; no change on any service."""
    own = _environment(platform.console_proc.pid)["EDGE_CONSOLE_TOKEN"]
    auth = {"Authorization": f"Bearer {own}"}
    async with httpx.AsyncClient(base_url=platform.setup, timeout=10) as setup:
        r = await setup.post("/operator/sessions", json={"secret": own}, headers=auth)
        assert r.status_code == 422 and r.json()["error"]["field"] == "secret", r.text
        r = await setup.post("/credentials", json={"kind": "operator"}, headers=auth)
        assert r.status_code == 403, r.text
        r = await setup.post("/credentials/revocations", json={"serial": "00" * 8}, headers=auth)
        assert r.status_code == 403, r.text
        r = await setup.post(
            "/operator/sessions", json={"secret": OPERATOR_TOKEN}, headers=OPERATOR
        )
        assert r.status_code == 403, r.text  # the console's route alone
        r = await setup.delete(f"/operator/sessions/{'ab' * 8}", headers=auth)
        assert r.status_code == 404, r.text  # only the sessions setup issued


async def test_a_service_or_operator_credential_is_revoked_alone(platform: Platform):
    async with httpx.AsyncClient(base_url=platform.setup, timeout=10) as setup:
        issued = []
        for body in ({"service": "analysis"},) * 2 + ({"kind": "operator", "ttl_days": 1},) * 2:
            r = await setup.post("/credentials", json=body, headers=OPERATOR)
            assert r.status_code == 201, r.text
            issued.append(r.json()["token"])
    for token in issued:
        assert await _status(platform.vms, "/nodes/state", token) == 200
    service, other_service, operator, other_operator = issued
    env = service_env(
        platform.database_url, EDGE_SETUP_URL=platform.setup, EDGE_OPERATOR_TOKEN=OPERATOR_TOKEN
    )
    for token in (service, operator):
        claims = decode_credential(token, KEYS)
        assert claims is not None
        done = subprocess.run(
            edgectl("credentials", "revoke", claims.serial),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert f"revoked {claims.serial}" in done.stdout
        after = await _refused_everywhere(platform, token)
        print(f"{claims.kind} credential refused by setup and the VMS {after:.3f} s after revoke")
    # Each alone: another credential of the same kind still works.
    for token in (other_service, other_operator):
        assert await _status(platform.vms, "/nodes/state", token) == 200
        assert await _status(platform.setup, "/edges", token) == 200
