"""TLS on every hop (issue 25 item 6), piece by piece with real processes: certificates from
`edgectl tls`, a service and the console served over HTTPS and verified against that CA (and
refused against another), the agent's own client verifying setup's certificate, Mosquitto over
TLS verified by an MQTT client, the console's cookie Secure over TLS. `edgectl up --tls` as a
whole is in tests/stack/test_up.py."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiomqtt
import httpx
import pytest

from edge_ai.agent.credentials import EdgeTokenStore
from edge_ai.agent.settings import AgentSettings
from edgectl.stack.embedded_mqtt import EmbeddedMqtt, _mosquitto
from shared import migrations
from shared.mqtt import parse_broker_url
from tests.helpers.env import OPERATOR, OPERATOR_TOKEN, console_env, free_port, service_env
from tests.helpers.processes import REPO, Proc, edgectl, start_service


def _edgectl(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "edgectl.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 made by `edgectl tls`, and a second, unrelated
    CA (what a client must refuse)."""
    root = tmp_path_factory.mktemp("pki")
    _edgectl("tls", "ca", "--out", str(root / "ca"))
    _edgectl("tls", "cert", "127.0.0.1", "localhost", "--ca", str(root / "ca"), "--out", str(root))
    _edgectl("tls", "ca", "--out", str(root / "other"))
    assert (root / "ca" / "ca-key.pem").stat().st_mode & 0o077 == 0
    return {
        "ca": root / "ca" / "ca.pem",
        "cert": root / "server.pem",
        "key": root / "server-key.pem",
        "other": root / "other" / "ca.pem",
    }


def _trust(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _serve_tls(
    name: str, db: str, pki: dict[str, Path], tmp_path: Path, **extra: str
) -> tuple[Proc, str]:
    port = free_port()
    env = service_env(
        db, EDGE_TLS_CERT_FILE=str(pki["cert"]), EDGE_TLS_KEY_FILE=str(pki["key"]), **extra
    )
    proc = Proc(
        edgectl("serve", name, "--port", str(port)), env=env, log_path=tmp_path / f"{name}.log"
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while True:
        assert proc.alive(), proc.log_text()[-3000:]
        try:
            if httpx.get(f"{url}/readyz", verify=_trust(pki["ca"]), timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, proc.log_text()[-3000:]
        time.sleep(0.3)


@pytest.mark.timeout(120)
async def test_setup_over_https_verified_by_clients_and_by_the_agent(db, pki, tmp_path):
    proc, url = _serve_tls("setup", db, pki, tmp_path, SETUP_NOTIFY_MASTER="false")
    try:
        assert "plain HTTP" not in proc.log_text()
        # A client with the CA: a verified chain; without it (the system's CAs) or with another
        # CA: refused before any request is sent.
        with httpx.Client(verify=ssl.create_default_context(cafile=str(pki["ca"]))) as client:
            r = client.post(
                f"{url}/edges", json={"name": "tls-edge", "nid": "0x31"}, headers=OPERATOR
            )
            assert r.status_code == 201, r.text
            token = r.json()["token"]
        for verify in (True, _trust(pki["other"])):
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                httpx.get(f"{url}/readyz", verify=verify)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https", "http") + "/readyz", timeout=3)  # no plain HTTP

        # The agent's own client (AgentSettings.verify, the same for the master and setup).
        def store(ca: Path, workdir: Path) -> EdgeTokenStore:
            workdir.mkdir()
            settings = AgentSettings(
                env="production",
                key="k" * 20,
                node="edge",
                master_url=url,
                setup_url=url,
                master_ca_file=str(ca),
                workdir=workdir,
            )
            return EdgeTokenStore(
                workdir / "edge-token",
                token,
                setup_url=settings.setup_url,
                renew_before_s=10**9,  # due now
                verify=settings.verify,
            )

        trusting = store(pki["ca"], tmp_path / "a")
        assert await trusting.renew_if_due() and trusting.current() != token
        doubting = store(pki["other"], tmp_path / "b")
        assert not await doubting.renew_if_due() and doubting.current() == token
    finally:
        proc.stop()


@pytest.mark.timeout(120)
async def test_the_console_cookie_is_secure_over_tls(database_url, pki, tmp_path):
    await asyncio.to_thread(migrations.upgrade, "services.console", database_url)
    # Setup checks what the operator signs in with (the console holds no operator token).
    setup_port = free_port()
    setup = start_service(
        "setup",
        env=service_env(database_url, SETUP_NOTIFY_MASTER="false"),
        port=setup_port,
        tmp_path=tmp_path,
    )
    setup_url = f"http://127.0.0.1:{setup_port}"
    proc, url = _serve_tls("console", database_url, pki, tmp_path, EDGE_SETUP_URL=setup_url)
    plain_port = free_port()
    plain = Proc(
        edgectl("serve", "console", "--port", str(plain_port)),
        env=console_env(database_url, EDGE_SETUP_URL=setup_url),
        log_path=tmp_path / "console-plain.log",
    )
    try:
        async with httpx.AsyncClient(verify=_trust(pki["ca"])) as client:
            r = await client.post(
                f"{url}/login", data={"token": OPERATOR_TOKEN, "next": "/"}, headers={"Origin": url}
            )
        assert r.status_code == 303, r.text
        cookie = [part.strip().lower() for part in r.headers["set-cookie"].split(";")]
        assert "secure" in cookie and "httponly" in cookie, cookie
        # Served over plain HTTP (loopback development): no Secure flag, and it says so at start.
        base = f"http://127.0.0.1:{plain_port}"
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and plain.alive(), plain.log_text()[-2000:]
            await asyncio.sleep(0.3)
        r = httpx.post(f"{base}/login", data={"token": OPERATOR_TOKEN}, headers={"Origin": base})
        assert r.status_code == 303
        assert "secure" not in [p.strip().lower() for p in r.headers["set-cookie"].split(";")]
        assert (
            "serving plain HTTP" in plain.log_text() and "loopback development" in plain.log_text()
        )
    finally:
        proc.stop()
        plain.stop()
        setup.stop()


@pytest.mark.skipif(_mosquitto() is None, reason="mosquitto is not installed")
@pytest.mark.timeout(60)
async def test_mosquitto_over_tls_verified_by_the_client(pki, tmp_path):
    port = free_port()
    broker = EmbeddedMqtt(
        tmp_path / "mqtt",
        port,
        {"PATH": "/usr/bin:/bin"},
        tmp_path / "mqtt.log",
        tls=(pki["ca"], pki["cert"], pki["key"]),
    )
    assert broker.kind == "mosquitto" and broker.url.startswith("mqtts://")
    broker.start()
    try:
        address = parse_broker_url(broker.url)
        topic = f"edge/tls-{uuid.uuid4().hex[:8]}/desired"
        context = address.tls_context(str(pki["ca"]))
        async with aiomqtt.Client(address.host, address.port, tls_context=context) as sub:
            await sub.subscribe(topic, qos=1)
            async with aiomqtt.Client(
                address.host, address.port, tls_context=address.tls_context(str(pki["ca"]))
            ) as pub:
                await pub.publish(topic, b"over tls", qos=1)
            async with asyncio.timeout(10):
                async for message in sub.messages:
                    assert message.payload == b"over tls"
                    break
        # Another CA, or none (the system's): the broker's certificate is refused.
        for ca in (str(pki["other"]), None):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    address.host, address.port, tls_context=address.tls_context(ca), timeout=5
                ):
                    pass
        # Plain MQTT is not served on that port.
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(address.host, address.port, timeout=5):
                pass
    finally:
        broker.stop()
