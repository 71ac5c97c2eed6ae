"""An in-test HTTP endpoint answering like the Kubernetes API server for the calls the driver makes.

Faithful where the driver depends on it: 201 on create, 409 AlreadyExists, 404 NotFound and
409 Conflict as ``Status`` objects, resourceVersion bumped on every write (a stale one on replace is
a 409), metadata.generation bumped when the spec changes, label selectors on lists, Status on
delete. Every request is recorded (method, path, query, body) for the test to assert on.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROUTE = re.compile(
    r"^/(?:api/v1|apis/apps/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>deployments|configmaps|secrets|pods)(?:/(?P<name>[^/]+))?$"
)
KINDS = {
    "deployments": ("apps/v1", "Deployment", "apps"),
    "configmaps": ("v1", "ConfigMap", ""),
    "secrets": ("v1", "Secret", ""),
    "pods": ("v1", "Pod", ""),
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None


def status(code: int, reason: str, message: str, *, name: str = "", plural: str = "") -> dict:
    group = KINDS.get(plural, ("", "", ""))[2]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "details": {"name": name, "group": group, "kind": plural},
        "code": code,
    }


class FakeKubeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}  # (plural, namespace, name) -> object
        self.requests: list[Request] = []
        self.fail_next: list[
            tuple[str, int, str]
        ] = []  # (method, code, reason): the next such request fails
        self._rv = 100
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                fake.requests.append(Request(self.command, parts.path, query, body))
                code, answer = fake.answer(self.command, parts.path, query, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- what the test does to the "cluster" -------------------------------------------------------
    def get(self, plural: str, ns: str, name: str) -> dict | None:
        return self.objects.get((plural, ns, name))

    def set_status(self, ns: str, name: str, status_: dict) -> None:
        """What the deployment controller would write."""
        with self._lock:
            self.objects[("deployments", ns, name)]["status"] = status_

    def add_pod(self, ns: str, deployment: str, *, status_: dict, suffix: str = "abcde") -> dict:
        """A pod of the deployment's current template, as the ReplicaSet would create it."""
        dep = self.objects[("deployments", ns, deployment)]
        template = dep["spec"]["template"]["metadata"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{deployment}-5d9c7b8f4-{suffix}",
                "namespace": ns,
                "labels": dict(template["labels"], **{"pod-template-hash": "5d9c7b8f4"}),
                "annotations": dict(template.get("annotations", {})),
                "uid": str(uuid.uuid4()),
            },
            "spec": copy.deepcopy(dep["spec"]["template"]["spec"]),
            "status": status_,
        }
        with self._lock:
            self._rv += 1
            pod["metadata"]["resourceVersion"] = str(self._rv)
            self.objects[("pods", ns, pod["metadata"]["name"])] = pod
        return pod

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    # -- the API server ----------------------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, dict]:
        for i, (fail_method, code, reason) in enumerate(self.fail_next):
            if fail_method == method:
                del self.fail_next[i]
                return code, status(code, reason, f"injected {reason}")
        m = ROUTE.match(path)
        if not m:
            return 404, status(404, "NotFound", "the server could not find the requested resource")
        ns, plural, name = m["ns"], m["plural"], m["name"]
        api_version, kind, _ = KINDS[plural]
        with self._lock:
            key = (plural, ns, name)
            if method == "GET" and name is None:
                items = [
                    copy.deepcopy(o)
                    for (p, n, _), o in self.objects.items()
                    if p == plural and n == ns and _matches(o, query.get("labelSelector", ""))
                ]
                return 200, {
                    "kind": f"{kind}List",
                    "apiVersion": api_version,
                    "metadata": {"resourceVersion": str(self._rv)},
                    "items": items,
                }
            if method == "POST" and name is None:
                name = (body or {}).get("metadata", {}).get("name")
                if not name:
                    return 422, status(
                        422,
                        "Invalid",
                        f"{kind} is invalid: metadata.name: Required value",
                        plural=plural,
                    )
                key = (plural, ns, name)
                if key in self.objects:
                    return 409, status(
                        409,
                        "AlreadyExists",
                        f'{plural} "{name}" already exists',
                        name=name,
                        plural=plural,
                    )
                if body["metadata"].get("resourceVersion"):
                    return 422, status(
                        422,
                        "Invalid",
                        "resourceVersion should not be set on objects to be created",
                        plural=plural,
                    )
                obj = _stored(plural, body)
                obj["metadata"].update(
                    namespace=ns, uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z"
                )
                if plural == "deployments":
                    obj["metadata"]["generation"] = 1
                    obj["status"] = {}
                self._rv += 1
                obj["metadata"]["resourceVersion"] = str(self._rv)
                self.objects[key] = obj
                return 201, copy.deepcopy(obj)
            if name is None:
                return 405, status(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            current = self.objects.get(key)
            if current is None:
                return 404, status(
                    404, "NotFound", f'{plural} "{name}" not found', name=name, plural=plural
                )
            if method == "GET":
                return 200, copy.deepcopy(current)
            if method == "DELETE":
                del self.objects[key]
                answer = status(200, "", "", name=name, plural=plural)
                answer["details"]["uid"] = current["metadata"]["uid"]
                return 200, answer
            if method == "PUT":
                if body.get("metadata", {}).get("name") != name:
                    return 400, status(
                        400,
                        "BadRequest",
                        "the name of the object does not match the name on the URL",
                    )
                rv = body["metadata"].get("resourceVersion")
                if rv and rv != current["metadata"]["resourceVersion"]:
                    return 409, status(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {plural} "{name}": '
                        "the object has been modified; please apply your changes "
                        "to the latest version and try again",
                        name=name,
                        plural=plural,
                    )
                obj = _stored(plural, body)
                for kept in ("uid", "creationTimestamp", "namespace", "generation"):
                    if kept in current["metadata"]:
                        obj["metadata"][kept] = current["metadata"][kept]
                if plural == "deployments":
                    if obj.get("spec") != current.get("spec"):
                        obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
                    obj["status"] = current.get(
                        "status", {}
                    )  # status is written through /status only
                self._rv += 1
                obj["metadata"]["resourceVersion"] = str(self._rv)
                self.objects[key] = obj
                return 200, copy.deepcopy(obj)
        return 405, status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )


def _stored(plural: str, body: dict) -> dict:
    """As the API server stores it: a Secret's write-only stringData folded into base64 data."""
    obj = copy.deepcopy(body)
    if plural == "secrets" and "stringData" in obj:
        data = obj.setdefault("data", {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(value.encode()).decode()
    return obj


def _matches(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True
