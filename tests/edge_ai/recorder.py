"""A small HTTP server that stands in for the VMS in the client's own tests: it records every
record it accepts, and can be told to answer 503, to refuse records, or be stopped and restarted
on the same port (a VMS outage)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KIND_BY_ROUTE = {"/save_edgeData": "environment", "/usage": "usage", "/detections": "detections"}


class Recorder:
    def __init__(self, port: int, *, batch_route: bool = True):
        self.port = port
        self.batch_route = batch_route
        self.mode = "ok"  # "ok" | "503" | "401" | "429"
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self.uploads: list[tuple[dict[str, Any], bytes]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(
                self, status: int, body: Any, headers: dict[str, str] | None = None
            ) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with recorder.lock:
                    recorder.requests.append(("POST", self.path, dict(self.headers)))
                if recorder.mode == "503":
                    return self._answer(503, {"detail": "overloaded"}, {"Retry-After": "1"})
                if recorder.mode == "429":  # a throttling analysis service
                    return self._answer(429, {"detail": "slow down"}, {"Retry-After": "1"})
                if recorder.mode == "401":
                    return self._answer(401, {"detail": "bad token"})
                if self.path == "/analysis":
                    return self._upload(raw)
                if self.path == "/batch":
                    if not recorder.batch_route:
                        return self._answer(404, {"detail": "Not Found"})
                    results = []
                    for i, item in enumerate(json.loads(raw)["records"]):
                        if item["data"].get("bad"):
                            results.append(
                                {"index": i, "status": "rejected", "errors": [{"field": "bad"}]}
                            )
                        else:
                            with recorder.lock:
                                recorder.records.append((item["kind"], item["data"]))
                            results.append({"index": i, "status": "stored"})
                    stored = sum(r["status"] == "stored" for r in results)
                    return self._answer(
                        200,
                        {"results": results, "stored": stored, "rejected": len(results) - stored},
                    )
                kind = KIND_BY_ROUTE.get(self.path)
                if kind is None:
                    return self._answer(404, {"detail": "Not Found"})
                data = json.loads(raw)
                if data.get("bad"):
                    return self._answer(422, {"code": "1001", "message": "bad: invalid"})
                with recorder.lock:
                    recorder.records.append((kind, data))
                return self._answer(200, {"code": "0000", "message": "success"})

            def _upload(self, raw: bytes) -> None:
                import email.parser
                import email.policy

                ctype = self.headers["Content-Type"]
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                )
                parts = {
                    p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()
                }
                metadata = json.loads(parts["metadata"].get_content())
                image = parts["image"].get_content()
                with recorder.lock:
                    recorder.uploads.append((metadata, image))
                self._answer(200, {"status": "queued"})

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for k, d in self.records if k == kind]
