"""Whether low-confidence frames go to the analysis server, and where.

Three writers, the latest wins: the configuration at start (``<analysis>`` in edgeconfig.xml,
EDGE_ROUTE_LOW_CONFIDENCE, EDGE_ANALYSIS_URL), a routing file (``--routing-file``, JSON
``{"route_low_confidence": true, "analysis_url": "http://..."}``, re-read when it changes; for
the optimizer or an agent that cannot reach the local API) and ``PUT /routing`` on the local API.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("edge_ai.yolo.routing")


class Routing:
    def __init__(self, *, route_low_confidence: bool, analysis_url: str | None, routing_file: Path | None = None):
        self.route_low_confidence = route_low_confidence
        self.analysis_url = analysis_url
        self.routing_file = routing_file
        self._file_stamp: tuple[float, int] | None = None

    @property
    def active(self) -> bool:
        return self.route_low_confidence and bool(self.analysis_url)

    def as_json(self) -> dict[str, Any]:
        return {"route_low_confidence": self.route_low_confidence, "analysis_url": self.analysis_url, "active": self.active}

    def apply(self, body: Any) -> str | None:
        """Update from a JSON object; returns the problem, naming the field, or None."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        if "route_low_confidence" in body and not isinstance(body["route_low_confidence"], bool):
            return "route_low_confidence: expected true or false"
        if "analysis_url" in body:
            url = body["analysis_url"]
            if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
                return "analysis_url: expected an http(s) URL or null"
        if "route_low_confidence" in body:
            self.route_low_confidence = body["route_low_confidence"]
        if "analysis_url" in body:
            self.analysis_url = body["analysis_url"].rstrip("/") if body["analysis_url"] else None
        return None

    def refresh_from_file(self) -> None:
        """Cheap when nothing changed (one stat); called once a second."""
        if self.routing_file is None:
            return
        try:
            st = self.routing_file.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            body = json.loads(self.routing_file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("routing file %s unreadable, ignored: %s", self.routing_file, exc)
            return
        problem = self.apply(body)
        if problem:
            log.warning("routing file %s ignored: %s", self.routing_file, problem)
        else:
            log.info("routing from %s: %s", self.routing_file, self.as_json())
