"""What the optimizer wants of this worker right now: where hard frames go, whether a helper has
taken its analysis over, whether it is in focus mode.

Three writers, the latest wins: the configuration at start (``<analysis>`` in edgeconfig.xml,
EDGE_ROUTE_LOW_CONFIDENCE, EDGE_ANALYSIS_URL), the live file (``EDGE_LIVE_FILE``, written by the
edge agent from the deployment's live params; or ``--routing-file``) and ``PUT /routing`` on the
local API. The live file holds the whole wanted state: a key it no longer has goes back to the
start value (a withdrawn route stops the uploads). ``PUT /routing`` changes only the keys it names.

Keys (all optional)::

    {"route_low_confidence": true, "analysis_url": "http://analysis:8004/analyze",
     "analysis_route": "edge" | "server", "analysis_edge": "0x02",
     "focus_until": "2026-11-28T08:00:00+00:00", "focus_source": "0x01",
     "focus_rate": 10, "focus_conf": 0.35, "focus_max_uploads": 3,
     "help_for": ["0x01"]}

``help_for``: the nids of the overloaded edges this worker analyses too (hot hand-off, see
``helping.py``; their camera URLs come from the live secrets file, never from here).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("edge_ai.yolo.routing")

ANALYSIS_ROUTES = ("edge", "server")
_NUMBERS = {
    "focus_rate": (0.0, 1000.0),
    "focus_conf": (0.0, 1.0),
    "focus_max_uploads": (0.0, 1000.0),
}


def analysis_target(url: str) -> str:
    """Where frames are posted: a bare analysis-service URL (``http://analysis:8004``) means its
    ``POST /analyze``; a URL with a path (the VMS inbox ``.../analysis``) is used as it is."""
    url = url.rstrip("/")
    return url if urlsplit(url).path not in ("", "/") else url + "/analyze"


def _parse_time(value: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class Routing:
    def __init__(
        self,
        *,
        route_low_confidence: bool,
        analysis_url: str | None,
        routing_file: Path | None = None,
        vms_inbox: str | None = None,
    ):
        self._start = {"route_low_confidence": route_low_confidence, "analysis_url": analysis_url}
        self.route_low_confidence = route_low_confidence
        self.analysis_url = analysis_url
        self.vms_inbox = vms_inbox  # the VMS's POST /analysis: where frames go when no URL is set
        self.analysis_route: str | None = None
        self.analysis_edge: str | None = None
        self.focus_until: datetime | None = None
        self.focus_source: str | None = None
        self.focus_overrides: dict[str, float] = {}
        self.help_for: tuple[str, ...] = ()
        self.routing_file = routing_file
        self._file_stamp: tuple[float, int] | None = None
        self.changes = 0  # how many times the wanted state changed (the worker logs each)

    # -- reads ---------------------------------------------------------------------------------

    @property
    def target_url(self) -> str | None:
        url = self.analysis_url or self.vms_inbox
        return analysis_target(url) if url else None

    @property
    def active(self) -> bool:
        """Hard (low-confidence) frames go up."""
        return self.route_low_confidence and bool(self.target_url)

    def focused(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.focus_until is not None and now < self.focus_until

    def as_json(self) -> dict[str, Any]:
        return {
            "route_low_confidence": self.route_low_confidence,
            "analysis_url": self.target_url,
            "active": self.active,
            "analysis_route": self.analysis_route,
            "analysis_edge": self.analysis_edge,
            "focus_until": self.focus_until.isoformat() if self.focus_until else None,
            "focus_source": self.focus_source,
            "focused": self.focused(),
            "help_for": list(self.help_for),
        }

    # -- writes --------------------------------------------------------------------------------

    def apply(self, body: Any, *, whole: bool = False) -> str | None:
        """Update from a JSON object; returns the problem, naming the field, or None.

        ``whole``: the body is the whole wanted state (the live file): absent keys go back to
        their start values."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        problem = _check(body)
        if problem:
            return problem
        before = self.as_json()
        if whole:
            body = {
                **self._start,
                "analysis_route": None,
                "analysis_edge": None,
                "focus_until": None,
                "focus_source": None,
                "help_for": [],
                **body,
            }
            self.focus_overrides = {}
        if "route_low_confidence" in body:
            self.route_low_confidence = bool(body["route_low_confidence"])
        if "analysis_url" in body:
            self.analysis_url = body["analysis_url"].rstrip("/") if body["analysis_url"] else None
        if "analysis_route" in body:
            self.analysis_route = body["analysis_route"] or None
        if "analysis_edge" in body:
            self.analysis_edge = str(body["analysis_edge"]) if body["analysis_edge"] else None
        if "focus_until" in body:
            self.focus_until = _parse_time(body["focus_until"]) if body["focus_until"] else None
        if "focus_source" in body:
            self.focus_source = str(body["focus_source"]) if body["focus_source"] else None
        if "help_for" in body:
            self.help_for = tuple(sorted({str(n) for n in body["help_for"] or ()}))
        for key in _NUMBERS:
            if body.get(key) is not None:
                self.focus_overrides[key] = float(body[key])
        if self.as_json() != before:
            self.changes += 1
        return None

    def refresh_from_file(self) -> bool:
        """Cheap when nothing changed (one stat); called once a second. True when it changed."""
        if self.routing_file is None:
            return False
        try:
            st = self.routing_file.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._file_stamp:
            return False
        self._file_stamp = stamp
        try:
            body = json.loads(self.routing_file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("routing file %s unreadable, ignored: %s", self.routing_file, exc)
            return False
        before = self.changes
        problem = self.apply(body, whole=True)
        if problem:
            log.warning("routing file %s ignored: %s", self.routing_file, problem)
            return False
        if self.changes != before:
            log.info("routing from %s: %s", self.routing_file, self.as_json())
            return True
        return False


def _check(body: dict[str, Any]) -> str | None:
    if "route_low_confidence" in body and not isinstance(body["route_low_confidence"], bool):
        return "route_low_confidence: expected true or false"
    url = body.get("analysis_url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        return "analysis_url: expected an http(s) URL or null"
    route = body.get("analysis_route")
    if route is not None and route not in ANALYSIS_ROUTES:
        return f"analysis_route: expected one of {', '.join(ANALYSIS_ROUTES)} or null"
    helped = body.get("help_for")
    if helped is not None and (
        not isinstance(helped, list)
        or not all(isinstance(n, str) and 0 < len(n) <= 32 for n in helped)
    ):
        return "help_for: expected a list of node ids"
    until = body.get("focus_until")
    if until is not None and (not isinstance(until, str) or _parse_time(until) is None):
        return "focus_until: expected an ISO 8601 time or null"
    for key, (low, high) in _NUMBERS.items():
        value = body.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low <= value <= high
        ):
            return f"{key}: expected a number in [{low:g}, {high:g}]"
    return None
