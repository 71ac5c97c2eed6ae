"""The configuration files compose.yaml and k8s/ ship, run for real with the same programs the
containers run (Debian's docker-registry is distribution 2.8 like registry:2; mosquitto 2), and
the services' health-check command run against a real service."""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.deploy import compose_file as cf
from tests.helpers.env import free_port, service_env
from tests.helpers.processes import Proc, start_service, wait_http
from tests.helpers.registry import REGISTRY_BIN, write_htpasswd

REGISTRY_CONFIG = cf.REPO / "deploy" / "registry" / "config.yml"
MOSQUITTO_CONFIG = cf.REPO / "deploy" / "mosquitto.conf"
AUTH_README = cf.REPO / "deploy" / "registry" / "auth" / "README.md"


def start_registry_with_shipped_config(
    tmp_path, extra_env: dict[str, str] | None = None
) -> tuple[Proc, int, int]:
    """deploy/registry/config.yml as is; only where it listens and stores is moved to this test's
    loopback ports and temp folder, the way the container's environment could."""
    port, debug_port = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
        "REGISTRY_HTTP_DEBUG_ADDR": f"127.0.0.1:{debug_port}",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "storage"),
        **(extra_env or {}),
    }
    proc = Proc(
        [REGISTRY_BIN, "serve", str(REGISTRY_CONFIG)], env=env, log_path=tmp_path / "registry.log"
    )
    wait_http(f"http://127.0.0.1:{debug_port}/debug/health", timeout=20, proc=proc)
    return proc, port, debug_port


def push_blob(client: httpx.Client, base: str, data: bytes) -> str:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = client.post(f"{base}/v2/deploy-test/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = start.headers["location"]
    location = location if location.startswith("http") else base + location
    separator = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={"content-type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return digest


def test_registry_config_serves_health_and_allows_deletes(tmp_path):
    proc, port, debug_port = start_registry_with_shipped_config(tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{base}/").status_code == 200  # the k8s readiness probe
            assert client.get(f"http://127.0.0.1:{debug_port}/metrics").status_code == 200
            digest = push_blob(client, base, b"an AI layer")
            # With deletes off, distribution answers 405 UNSUPPORTED here.
            assert client.delete(f"{base}/v2/deploy-test/blobs/{digest}").status_code == 202
            assert client.head(f"{base}/v2/deploy-test/blobs/{digest}").status_code == 404
    finally:
        proc.stop()


def documented_registry_env() -> dict[str, str]:
    """The registry.env the auth README tells operators to write."""
    block = re.search(
        r"cat > deploy/registry/auth/registry\.env <<'END'\n(.*?)\n\s*END",
        AUTH_README.read_text(),
        re.S,
    )
    assert block, "the README's registry.env block"
    return dict(line.strip().split("=", 1) for line in block.group(1).splitlines() if line.strip())


def test_documented_htpasswd_auth_protects_the_api_but_not_the_health_check(tmp_path):
    pytest.importorskip("bcrypt")
    env = documented_registry_env()
    assert env["REGISTRY_AUTH"] == "htpasswd"
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {"edge-master": "registry-password-0123"})
    env["REGISTRY_AUTH_HTPASSWD_PATH"] = str(htpasswd)  # /auth/htpasswd in the container
    proc, port, debug_port = start_registry_with_shipped_config(tmp_path, env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{base}/v2/").status_code == 401
            assert (
                client.get(f"{base}/v2/", auth=("edge-master", "wrong-password")).status_code == 401
            )
            assert (
                client.get(
                    f"{base}/v2/", auth=("edge-master", "registry-password-0123")
                ).status_code
                == 200
            )
            # compose's health check needs no credentials.
            assert client.get(f"http://127.0.0.1:{debug_port}/debug/health").status_code == 200
    finally:
        proc.stop()


def mqtt_connect(port: int) -> int:
    """Send an MQTT 3.1.1 CONNECT without credentials; the CONNACK return code (0: accepted)."""
    client_id = b"deploy-test"
    variable = (
        b"\x00\x04MQTT\x04\x02\x00\x1e"  # protocol name, level 4, clean session, keepalive 30
    )
    payload = struct.pack("!H", len(client_id)) + client_id
    body = variable + payload
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        reply = sock.recv(4)
    assert reply[:2] == b"\x20\x02", reply
    return reply[3]


def test_mosquitto_config_refuses_anonymous_clients_and_applies_the_acl(tmp_path):
    """The shipped config (deploy/mosquitto.conf and .acl) on a private broker: anonymous and
    wrong passwords are refused, the master may write any node's notice, an agent reads only
    its own topic (tests/updates/test_pull_agent.py runs the whole update path on it)."""
    import paho.mqtt.publish as publish
    import paho.mqtt.subscribe as subscribe

    from tests.updates.broker import MASTER_PASSWORD, Broker, agent_password

    text = MOSQUITTO_CONFIG.read_text()
    assert "listener 1883" in text and "persistence_location /mosquitto/data/" in text
    assert "allow_anonymous false" in text
    broker = Broker(tmp_path).start()
    try:
        assert mqtt_connect(broker.port) == 5  # anonymous: not authorised
        master = {"username": "master", "password": MASTER_PASSWORD}
        for nid in ("0x01", "0x02"):
            publish.single(
                f"edge/{nid}/desired",
                nid,
                qos=1,
                retain=True,
                hostname="127.0.0.1",
                port=broker.port,
                auth=master,
            )
        own = subscribe.simple(
            "edge/0x01/desired",
            qos=1,
            hostname="127.0.0.1",
            port=broker.port,
            auth={"username": "0x01", "password": agent_password("0x01")},
        )
        assert own.payload == b"0x01"
        # 0x01 subscribing to every node's topic still gets only its own retained notice.
        got = subscribe.simple(
            "edge/+/desired",
            qos=1,
            msg_count=1,
            hostname="127.0.0.1",
            port=broker.port,
            auth={"username": "0x01", "password": agent_password("0x01")},
        )
        assert got.topic == "edge/0x01/desired"
        # The edges' listener: MQTT over TLS, the broker's certificate verified against the CA
        # (and refused against the system's CAs); the same users and ACL.
        tls = {"ca_certs": str(broker.ca)}
        own = subscribe.simple(
            "edge/0x02/desired",
            qos=1,
            hostname="127.0.0.1",
            port=broker.tls_port,
            auth={"username": "0x02", "password": agent_password("0x02")},
            tls=tls,
        )
        assert own.payload == b"0x02"
        with pytest.raises(ssl.SSLCertVerificationError):
            subscribe.simple(
                "edge/0x02/desired",
                hostname="127.0.0.1",
                port=broker.tls_port,
                auth={"username": "0x02", "password": agent_password("0x02")},
                tls={"ca_certs": None},
            )
    finally:
        broker.stop()


# --- the services' health check command --------------------------------------------------


def healthcheck_argv(service: str, port: int) -> list[str]:
    """compose's health check for ``service`` with its port moved to ``port``, run with this
    interpreter in place of the image's python."""
    compose = cf.load()
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    code = test[3]
    original = re.search(r"127\.0\.0\.1:(\d+)/", code).group(1)
    return [sys.executable, "-c", code.replace(f"127.0.0.1:{original}/", f"127.0.0.1:{port}/")]


class _Unready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b'{"status": "database unreachable"}')

    def log_message(self, *args):
        pass


def test_health_check_fails_while_the_database_is_unreachable():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run(
            healthcheck_argv("vms", server.server_address[1]), capture_output=True, timeout=30
        )
        assert result.returncode != 0
    finally:
        server.shutdown()
        server.server_close()
    nothing_there = subprocess.run(
        healthcheck_argv("vms", free_port()), capture_output=True, timeout=30
    )
    assert nothing_there.returncode != 0


def test_health_check_passes_on_a_ready_service(database_url, tmp_path):
    port = free_port()
    proc = start_service(
        "vms",
        env=service_env(database_url, EDGE_MIGRATE_ON_START="false"),
        port=port,
        tmp_path=tmp_path,
    )
    try:
        result = subprocess.run(
            healthcheck_argv("vms", port), capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
    finally:
        proc.stop()


def test_mosquitto_binds_client_ids_to_user_names(tmp_path):
    """An edge that connects with the master's client id takes its own user name as id instead:
    the master stays connected and keeps publishing (issue 25 item 7)."""
    import threading

    import paho.mqtt.client as mqtt

    from tests.updates.broker import MASTER_PASSWORD, Broker, agent_password

    assert "use_username_as_clientid true" in MOSQUITTO_CONFIG.read_text()
    broker = Broker(tmp_path).start()
    clients = []
    try:
        dropped = threading.Event()

        def connect(user: str, password: str) -> mqtt.Client:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-master")
            client.username_pw_set(user, password)
            connected = threading.Event()
            client.on_connect = lambda *args: connected.set()
            client.connect("127.0.0.1", broker.port, keepalive=30)
            client.loop_start()
            clients.append(client)
            assert connected.wait(5), f"{user} did not connect"
            return client

        master = connect("master", MASTER_PASSWORD)
        master.on_disconnect = lambda *args: dropped.set()
        connect("0x01", agent_password("0x01"))
        assert not dropped.wait(1.5), "the edge's connection knocked the master off"
        info = master.publish("edge/0x02/desired", b"still here", qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()
        broker.stop()


# --- the compose `tls` profile's proxy ----------------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{self.headers.get('X-Forwarded-Proto')} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_the_tls_proxy_config_serves_https_with_a_verified_chain(tmp_path):
    """deploy/nginx/edge-tls.conf run by this machine's nginx: only the upstreams (compose's
    service names, resolved by Docker's DNS) and the ports move. Every server speaks TLS with the
    certificate from deploy/tls (made by edgectl tls), a client verifies the chain against the CA,
    and the upstream is told the request came over https."""
    from edgectl.tls import make_ca, make_cert

    ca = make_ca(tmp_path / "tls")
    make_cert(tmp_path / "tls", ["127.0.0.1", "localhost"], tmp_path / "tls", name="server")
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    text = (cf.REPO / "deploy" / "nginx" / "edge-tls.conf").read_text()
    listens = re.findall(r"listen (\d+) ssl", text)
    assert listens == ["443", "8441", "8442", "8443", "8444", "8445"]
    ports = {port: free_port() for port in listens}
    for port, local in ports.items():
        text = text.replace(f"listen {port} ssl", f"listen 127.0.0.1:{local} ssl")
    text = re.sub(r"resolver [^;]+;", "", text)
    text = re.sub(r"http://[a-z]+:\d+;", f"http://127.0.0.1:{backend.server_address[1]};", text)
    text = text.replace("/etc/nginx/tls/", f"{tmp_path}/tls/")
    (tmp_path / "edge-tls.conf").write_text(text)
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path};\n"
        f"proxy_temp_path {tmp_path};\ninclude {tmp_path}/edge-tls.conf;\n}}\n"
    )
    proc = subprocess.Popen(
        ["nginx", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        trust = ssl.create_default_context(cafile=str(ca))
        for local in ports.values():
            url = f"https://127.0.0.1:{local}/readyz"
            for _ in range(50):
                try:
                    r = httpx.get(url, verify=trust, timeout=2)
                    break
                except httpx.ConnectError:
                    assert proc.poll() is None, proc.stdout.read().decode()
                    time.sleep(0.1)
            assert r.status_code == 200 and r.text == "https /readyz", r.text
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                httpx.get(url, timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        backend.shutdown()
