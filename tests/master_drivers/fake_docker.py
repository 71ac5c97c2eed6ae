"""An in-test HTTP endpoint answering like the Docker Engine API for the calls the docker
driver makes.

Faithful where the driver depends on it: ``{"message": ...}`` error bodies with the engine's status
codes (404 no such container/image, 409 name in use or removing a running container, 304 start of a
running container), pulls as a JSON progress stream, names with the leading slash, labels filters,
archives put into a container, multiplexed log frames. Requests are recorded for the test.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION_PREFIX = re.compile(r"^/v\d+\.\d+")


@dataclass
class Container:
    id: str
    name: str
    image: str
    env: list[str]
    labels: dict[str, str]
    host_config: dict
    created: str
    status: str = "created"
    exit_code: int = 0
    restart_count: int = 0
    pid: int = 0
    user: str = ""  # Config.User: the create's, else the image's USER
    files: dict[str, bytes] = field(default_factory=dict)
    file_modes: dict[str, int] = field(default_factory=dict)
    file_owners: dict[str, str] = field(default_factory=dict)  # "uid:gid" as extracted
    log_lines: list[str] = field(default_factory=list)

    def inspect(self) -> dict:
        return {
            "Id": self.id,
            "Created": self.created,
            "Name": f"/{self.name}",
            "Image": "sha256:" + "0" * 64,
            "RestartCount": self.restart_count,
            "State": {
                "Status": self.status,
                "Running": self.status in ("running", "restarting"),
                "Paused": False,
                "Restarting": self.status == "restarting",
                "OOMKilled": False,
                "Dead": self.status == "dead",
                "Pid": self.pid if self.status == "running" else 0,
                "ExitCode": self.exit_code,
                "Error": "",
                "StartedAt": "2026-01-01T00:00:00Z",
                "FinishedAt": "0001-01-01T00:00:00Z",
            },
            "Config": {
                "Image": self.image,
                "Env": self.env,
                "Labels": self.labels,
                "Tty": False,
                "User": self.user,
            },
            "HostConfig": self.host_config,
        }

    def summary(self) -> dict:
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.image,
            "Labels": self.labels,
            "State": self.status,
            "Status": self.status,
            "Created": 0,
        }


class FakeDockerEngine:
    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}
        self.images: set[str] = set()
        # image -> its USER, as "uid:gid" (what the engine resolves a name to in the container's
        # /etc/passwd); absent: root
        self.image_users: dict[str, str] = {}
        self.registry: set[str] = set()  # images a pull can find
        self.registry_down = False
        self.crashing_images: dict[
            str, int
        ] = {}  # image -> exit code: started containers crash-loop
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.pull_auth: list[str | None] = []  # X-Registry-Auth of each pull
        self._clock = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                path = VERSION_PREFIX.sub("", parts.path)
                if self.headers.get("Transfer-Encoding") == "chunked":
                    raw = self._read_chunked()
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    raw = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                fake.requests.append((self.command, path, query, raw))
                if path == "/images/create":
                    fake.pull_auth.append(self.headers.get("X-Registry-Auth"))
                with fake._lock:
                    code, body, ctype = fake.answer(self.command, path, query, raw)
                self.send_response(code)
                if code in (204, 304):
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if isinstance(body, list) and ctype == "chunked":
                    # Progress streams come chunked, one JSON object per chunk, as from the engine.
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _read_chunked(self) -> bytes:
                out = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"tcp://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- for the test ------------------------------------------------------------------------------
    def by_name(self, name: str) -> Container | None:
        return next((c for c in self.containers.values() if c.name == name), None)

    def calls(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self.requests if p not in ("/_ping", "/version")]

    def _find(self, ref: str) -> Container | None:
        return (
            self.containers.get(ref)
            or self.by_name(ref)
            or next(
                (c for cid, c in self.containers.items() if len(ref) >= 12 and cid.startswith(ref)),
                None,
            )
        )

    # -- the engine --------------------------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict, raw: bytes):
        j = "application/json"
        if path == "/_ping":
            return 200, b"OK", "text/plain"
        if path == "/version":
            return 200, {"ApiVersion": "1.45", "Version": "26.1.0", "MinAPIVersion": "1.24"}, j
        if method == "POST" and path == "/images/create":
            ref = f"{query['fromImage']}:{query.get('tag', 'latest')}"
            if self.registry_down:
                host = ref.split("/")[0]
                refused = f'Get "http://{host}/v2/": dial tcp: connect: connection refused'
                return 500, {"message": refused}, j
            if ref not in self.registry:
                unknown = f"manifest for {ref} not found: manifest unknown: manifest unknown"
                return 404, {"message": unknown}, j
            self.images.add(ref)
            lines = [
                {"status": f"Pulling from {query['fromImage']}", "id": query.get("tag")},
                {"status": "Digest: sha256:" + "1" * 64},
                {"status": f"Status: Downloaded newer image for {ref}"},
            ]
            return 200, [json.dumps(x).encode() + b"\r\n" for x in lines], "chunked"
        if method == "GET" and path == "/containers/json":
            filters = json.loads(query.get("filters", "{}"))
            wanted = [lbl.partition("=") for lbl in filters.get("label", [])]
            items = [
                c.summary()
                for c in self.containers.values()
                if (query.get("all") in ("1", "true", "True") or c.status == "running")
                and all(c.labels.get(k) == v for k, _, v in wanted)
            ]
            return 200, items, j
        if method == "POST" and path == "/containers/create":
            body = json.loads(raw)
            name = query.get("name")
            if name and self.by_name(name):
                other = self.by_name(name)
                in_use = (
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able '
                    "to reuse that name."
                )
                return 409, {"message": in_use}, j
            if body["Image"] not in self.images:
                return 404, {"message": f"No such image: {body['Image']}"}, j
            self._clock += 1
            cid = uuid.uuid4().hex + uuid.uuid4().hex
            self.containers[cid] = Container(
                id=cid,
                name=name or f"auto_{cid[:6]}",
                image=body["Image"],
                env=body.get("Env") or [],
                labels=body.get("Labels") or {},
                host_config=body.get("HostConfig") or {},
                created=f"2026-01-01T00:00:{self._clock:02d}Z",
                user=body.get("User") or self.image_users.get(body["Image"], ""),
            )
            return 201, {"Id": cid, "Warnings": []}, j
        m = re.match(r"^/containers/([^/]+)(?:/(json|start|stop|archive|rename|logs))?$", path)
        if not m:
            return 404, {"message": "page not found"}, j
        c = self._find(m[1])
        if c is None:
            return 404, {"message": f"No such container: {m[1]}"}, j
        action = m[2]
        if method == "GET" and action == "json":
            return 200, c.inspect(), j
        if method == "PUT" and action == "archive":
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                for member in tar.getmembers():
                    path_ = f"{query['path'].rstrip('/')}/{member.name}"
                    c.files[path_] = tar.extractfile(member).read()
                    c.file_modes[path_] = member.mode
                    # As the engine: root unless copyUIDGID asks for the container's user.
                    copy_ids = query.get("copyUIDGID") in ("1", "true", "True")
                    c.file_owners[path_] = (c.user or "0:0") if copy_ids else "0:0"
            return 200, b"", j
        if method == "POST" and action == "start":
            if c.status == "running":
                return 304, None, j
            if c.image in self.crashing_images:
                c.status, c.exit_code, c.restart_count = (
                    "restarting",
                    self.crashing_images[c.image],
                    3,
                )
                c.log_lines = ["loading model", "fatal: CUDA device not found"]
            else:
                c.status, c.pid = "running", 4000 + len(self.containers)
            return 204, None, j
        if method == "POST" and action == "stop":
            if c.status not in ("running", "restarting"):
                return 304, None, j
            c.status, c.exit_code = "exited", 0
            return 204, None, j
        if method == "POST" and action == "rename":
            if self.by_name(query["name"]) not in (None, c):
                in_use = f'Conflict. The container name "/{query["name"]}" is already in use'
                return 409, {"message": in_use}, j
            c.name = query["name"]
            return 204, None, j
        if method == "GET" and action == "logs":
            tail = (
                int(query.get("tail", "all"))
                if query.get("tail", "all") != "all"
                else len(c.log_lines)
            )
            frames = b""
            for line in c.log_lines[-tail:]:
                data = (line + "\n").encode()
                frames += struct.pack(">BxxxL", 2, len(data)) + data
            return 200, frames, "application/vnd.docker.raw-stream"
        if method == "DELETE" and action is None:
            if c.status in ("running", "restarting") and query.get("force") not in (
                "1",
                "true",
                "True",
            ):
                return (
                    409,
                    {
                        "message": f"You cannot remove a running container {c.id}. "
                        "Stop the container before attempting removal or force remove"
                    },
                    j,
                )
            del self.containers[c.id]
            return 204, None, j
        return 405, {"message": "method not allowed"}, j
