"""The optional Docker-engine build path, contract-tested: no engine runs here, so an in-test HTTP
endpoint answers like the Engine API (v1.43) for the two calls the SDK makes (build, push) and
records what it was sent."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from services.master.packages import ingest_package
from services.master.registry import RegistryConfig
from services.master.registry.docker_build import docker_build_and_push
from shared.errors import Invalid, UpstreamError

from .conftest import make_targz, package_files

PUSHED_DIGEST = "sha256:" + "ab" * 32
DOCKERFILE = (
    "FROM 127.0.0.1:5000/python:3.11-slim\n"
    "COPY . /opt/edge-ai/monitoring\n"
    "WORKDIR /opt/edge-ai/monitoring\n"
)


class FakeEngine:
    def __init__(self, fail_build: bool = False):
        self.calls: list[dict] = []
        self.fail_build = fail_build
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        engine = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _stream(self, events: list[dict], status: int = 200) -> None:
                # like the engine: one JSON object per chunk of a chunked response
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for e in events:
                    data = json.dumps(e).encode() + b"\r\n"
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

            def do_POST(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self._body()
                path = unquote(url.path)
                engine.calls.append(
                    {"path": path, "query": query, "headers": dict(self.headers), "body": body}
                )
                if path == "/v1.43/build":
                    if engine.fail_build:
                        self._stream(
                            [
                                {"stream": "Step 1/3"},
                                {
                                    "errorDetail": {"message": "COPY failed: no such file"},
                                    "error": "COPY failed",
                                },
                            ]
                        )
                    else:
                        self._stream(
                            [
                                {"stream": "Step 1/3 : FROM python"},
                                {"aux": {"ID": "sha256:" + "cd" * 32}},
                                {"stream": "Successfully built"},
                            ]
                        )
                elif path.startswith("/v1.43/images/") and path.endswith("/push"):
                    self._stream(
                        [
                            {"status": "Pushing"},
                            {"status": f"{query.get('tag')}: digest: {PUSHED_DIGEST} size: 1234"},
                            {
                                "progressDetail": {},
                                "aux": {
                                    "Tag": query.get("tag"),
                                    "Digest": PUSHED_DIGEST,
                                    "Size": 1234,
                                },
                            },
                        ]
                    )
                else:
                    self._stream([{"message": "page not found"}], status=404)

        return H


@pytest.fixture
def engine():
    e = FakeEngine()
    yield e
    e.stop()


async def _docker_package(tmp_path, store):
    files = package_files(Dockerfile=DOCKERFILE)
    files["aipackage.yaml"] += b"dockerfile: Dockerfile\n"
    return await ingest_package(make_targz(tmp_path / "p.tar.gz", files), store)


async def test_build_sends_context_labels_and_pushes_with_credentials(
    tmp_path: Path, store, engine
):
    pkg = await _docker_package(tmp_path, store)
    registry = RegistryConfig(
        url="http://127.0.0.1:5000", username="edge-ci", password="push-Secret-1"
    )
    built = await docker_build_and_push(
        docker_host=engine.url,
        store=store,
        package_digest=pkg.digest,
        manifest=pkg.manifest,
        registry=registry,
    )
    assert (built.reference, built.digest) == ("127.0.0.1:5000/monitoring-01:01", PUSHED_DIGEST)

    build, push = engine.calls
    assert build["path"] == "/v1.43/build"
    assert build["query"]["t"] == "127.0.0.1:5000/monitoring-01:01"
    assert build["query"]["dockerfile"] == "Dockerfile"
    labels = json.loads(build["query"]["labels"])
    assert (
        labels["org.edge-ai.package-digest"] == pkg.digest
        and labels["org.edge-ai.ai_class"] == "01"
    )
    with tarfile.open(fileobj=io.BytesIO(build["body"])) as ctx:
        assert ctx.extractfile("Dockerfile").read().decode() == DOCKERFILE
        assert ctx.extractfile("main.py").read() == b"print('monitoring running')\n"

    assert (
        push["path"] == "/v1.43/images/127.0.0.1:5000/monitoring-01/push"
        and push["query"]["tag"] == "01"
    )
    auth = json.loads(base64.urlsafe_b64decode(push["headers"]["X-Registry-Auth"] + "=="))
    assert (auth["username"], auth["password"]) == ("edge-ci", "push-Secret-1")
    assert list(store.tmp_dir.iterdir()) == []  # the build context is cleaned up


async def test_build_error_is_reported(tmp_path: Path, store):
    failing = FakeEngine(fail_build=True)
    try:
        pkg = await _docker_package(tmp_path, store)
        with pytest.raises(UpstreamError) as exc:
            await docker_build_and_push(
                docker_host=failing.url,
                store=store,
                package_digest=pkg.digest,
                manifest=pkg.manifest,
                registry=RegistryConfig(url="http://127.0.0.1:5000"),
            )
        assert exc.value.message == "docker build failed: COPY failed: no such file"
        assert len(failing.calls) == 1  # nothing pushed
    finally:
        failing.stop()


async def test_package_without_dockerfile_is_refused(tmp_path: Path, store, engine):
    pkg = await ingest_package(make_targz(tmp_path / "p.tar.gz", package_files()), store)
    with pytest.raises(Invalid) as exc:
        await docker_build_and_push(
            docker_host=engine.url,
            store=store,
            package_digest=pkg.digest,
            manifest=pkg.manifest,
            registry=RegistryConfig(url="http://127.0.0.1:5000"),
        )
    assert exc.value.field == "manifest.dockerfile" and engine.calls == []
