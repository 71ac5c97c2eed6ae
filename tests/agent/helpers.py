"""Building blocks for the agent tests: packages, an artifact server answering like the master's
``GET /artifacts/sha256:<hex>``, the agent as a real process, and a look at the processes it
runs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import ssl
import sys
import tarfile
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil

from shared.agent_keys import agent_key, derived_secret
from shared.edge_tokens import issue_edge_token, verify_edge_token
from tests.helpers.env import KEYS, SERVICE_TOKEN, SIGNER, credentials_env, free_port, service_env
from tests.helpers.processes import EDGE_PYTHON, REPO, Proc, edgectl, wait_http

# An agent holds only its own key (what the master presents) and its edge's token (what it
# presents to the master and setup): no service credential, no operator token, no signing secret.
# The key the test master derives for node 0x01 (shared.agent_keys): real masters reach this agent.
AGENT_KEY = agent_key(derived_secret(SERVICE_TOKEN), "0x01")
AGENT_AUTH = {"Authorization": f"Bearer {AGENT_KEY}"}
AGENT_NID = "0x01"
PLATFORM_SECRETS = (
    "EDGE_SERVICE_TOKEN",
    "EDGE_OPERATOR_TOKEN",
    "EDGE_EDGE_TOKEN_SECRET",
    "EDGE_DATABASE_URL",
)


def agent_env(**extra: str) -> dict[str, str]:
    env = service_env("postgresql+asyncpg://unused/unused")
    for name in (*PLATFORM_SECRETS, *credentials_env()):
        env.pop(name, None)
    env.update(AGENT_KEY=AGENT_KEY, AGENT_EDGE_TOKEN=issue_edge_token(AGENT_NID, SIGNER))
    env.update(extra)
    return env


# Fast supervision so the tests take seconds, not minutes.
AGENT_TEST_ENV = {
    "AGENT_READY_GRACE_S": "0.6",
    "AGENT_BACKOFF_BASE_S": "0.2",
    "AGENT_BACKOFF_CAP_S": "1",
    "AGENT_STABLE_AFTER_S": "5",
    "AGENT_CRASH_LOOP_LIMIT": "3",
    "AGENT_STOP_TIMEOUT_S": "3",
}

TICKER = textwrap.dedent(
    """
    import os, sys, time
    from helper_mod import label  # found through PYTHONPATH = the package directory
    tick_file = os.environ.get("TICK_FILE")
    quiet = os.environ.get("QUIET") == "1"  # no stdout: survives its agent being killed
    config = open("edgeconfig.xml").read() if os.path.exists("edgeconfig.xml") else ""
    if not quiet:
        print("config", "<IP>" in config, flush=True)
    while True:
        line = f"{label()} {time.time():.3f}"
        if not quiet:
            print(line, flush=True)
        if tick_file:
            with open(tick_file, "a") as f:
                f.write(line + "\\n")
        time.sleep(0.2)
    """
)

CRASHER = textwrap.dedent(
    """
    import sys
    print("starting up", flush=True)
    print("fatal: camera not found", flush=True)
    sys.exit(3)
    """
)


def package_bytes(files: dict[str, str | bytes], fmt: str = "tar.gz") -> bytes:
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content in files.items():
                zf.writestr(name, content)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, content in files.items():
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ticker_package(version: str, fmt: str = "tar.gz") -> bytes:
    return package_bytes(
        {
            "manifest.yaml": f"filename: monitoring\nversion: '{version}'\nai_class: "
            "'01'\ncommand: [python, main.py]\n",
            "main.py": TICKER,
            "helper_mod.py": f"def label():\n    return 'v{version}'\n",
        },
        fmt,
    )


def crasher_package() -> bytes:
    return package_bytes({"manifest.yaml": "filename: crasher\n", "main.py": CRASHER})


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ArtifactServer:
    """Serves ``GET /artifacts/sha256:<hex>`` with the service token, as the master will.

    ``serve_instead`` makes it answer a digest with other bytes (a corrupted transfer)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) to serve https, as a master behind TLS does."""
        self.blobs: dict[str, bytes] = {}
        self.substitutes: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Authorization")))
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                if scheme != "Bearer" or verify_edge_token(token, KEYS) is None:  # an edge's token
                    return self._send(401, b'{"error": {"type": "unauthorized"}}')
                prefix = "/artifacts/"
                digest = (
                    self.path[len(prefix) :].split("?", 1)[0]
                    if self.path.startswith(prefix)
                    else ""
                )
                data = server.substitutes.get(digest, server.blobs.get(digest))
                if data is None:
                    return self._send(404, b'{"error": {"type": "not_found"}}')
                self._send(200, data, "application/octet-stream")

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(self, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs[digest] = data
        return digest

    def fetches_of(self, digest: str) -> int:
        return sum(1 for path, _ in self.requests if path == f"/artifacts/{digest}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Agent:
    """The agent as a real process (``edgectl agent``), with an HTTP client carrying the master's
    token."""

    def __init__(
        self,
        tmp_path: Path,
        master_url: str,
        *,
        node: str = "edge-test-01",
        workdir: Path | None = None,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        python: str | None = None,
    ):
        """``python``: the interpreter the agent (and so its workloads) runs under (default
        EDGE_PYTHON: this one, or the Python 3.8 environment)."""
        self.python = python or EDGE_PYTHON
        self.tmp_path = tmp_path
        self.master_url = master_url
        self.node = node
        self.workdir = (workdir or tmp_path / "agent-work").resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = {**AGENT_TEST_ENV, **(extra_env or {})}
        self.proc: Proc | None = None
        self.client = httpx.Client(base_url=self.url, headers=AGENT_AUTH, timeout=30)
        self._runs = 0

    def start(self) -> Agent:
        self._runs += 1
        env = agent_env(**self.extra_env)
        self._edge_token = env["AGENT_EDGE_TOKEN"]
        options = (
            *("--node", self.node, "--port", str(self.port)),
            *("--workdir", str(self.workdir), "--master-url", self.master_url),
        )
        # ``edgectl agent``; under another Python (3.8) the agent's own entry point, as a box
        # without the platform runs it, with this checkout's code.
        if self.python == sys.executable:
            args = edgectl("agent", *options)
        else:
            args = [self.python, "-m", "edge_ai.agent", *options]
            env["PYTHONPATH"] = str(REPO)
        self.proc = Proc(
            args, env=env, log_path=self.tmp_path / f"agent-{self.port}-{self._runs}.log"
        )
        wait_http(f"{self.url}/healthz", timeout=30, proc=self.proc)
        return self

    def stop(self, sig=None) -> int | None:
        if self.proc is None:
            return None
        import signal as _signal

        code = self.proc.stop(sig or _signal.SIGTERM)
        return code

    def close(self) -> None:
        self.stop()
        self.client.close()

    def edge_token(self) -> str:
        """The edge token the agent was started with (what it hands its workloads)."""
        return self._edge_token

    def status(self, name: str) -> dict:
        r = self.client.get(f"/workloads/{name}")
        r.raise_for_status()
        return r.json()


EDGECONFIG = (
    "<Configuration><vms><IP>127.0.0.1</IP><Port>6432</Port><Path>usage</Path></vms>"
    "</Configuration>"
)


def spec(
    name: str,
    digest: str,
    version: str,
    *,
    command=("python", "main.py"),
    env=None,
    generation: int = 1,
    deployment_id: int = 1,
    edgeconfig: str = EDGECONFIG,
) -> dict:
    return {
        "name": name,
        "package_digest": digest,
        "version": version,
        "command": list(command),
        "env": env or {},
        "edgeconfig_xml": edgeconfig,
        "deployment_id": deployment_id,
        "generation": generation,
    }


def workload_processes(workdir: Path, name: str | None = None) -> list[psutil.Process]:
    """Live processes the agent started for ``workdir`` (found by the marker in their
    environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if env.get("EDGE_AGENT_WORKDIR") == str(workdir) and (
            name is None or env.get("EDGE_AGENT_WORKLOAD") == name
        ):
            found.append(proc)
    return found


def wait_until(
    check: Callable[[], object],
    *,
    timeout: float = 20,
    interval: float = 0.1,
    what: str = "condition",
):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, AssertionError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def kill_leftovers(workdir: Path) -> None:
    """Test cleanup: nothing of this test may outlive it, whatever the assertions said."""
    for proc in workdir_processes_safe(workdir):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def workdir_processes_safe(workdir: Path) -> list[psutil.Process]:
    try:
        return workload_processes(workdir)
    except Exception:
        return []


__all__ = [
    "Agent",
    "ArtifactServer",
    "crasher_package",
    "digest_of",
    "kill_leftovers",
    "package_bytes",
    "spec",
    "ticker_package",
    "wait_until",
    "workload_processes",
]
