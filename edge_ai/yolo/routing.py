"""What the optimizer wants of this worker right now: where hard frames go, whether a helper has
taken its analysis over, whether it is in focus mode.

Three writers, the latest wins: the configuration at start (``<analysis>`` in edgeconfig.xml,
EDGE_ROUTE_LOW_CONFIDENCE, EDGE_ANALYSIS_URL), the live file (``EDGE_LIVE_FILE``, written by the
edge agent from the deployment's live params; or ``--routing-file``) and ``PUT /routing`` on the
local API. The live file holds the whole wanted state: a key it no longer has goes back to the
start value (a withdrawn route stops the uploads). ``PUT /routing`` changes only the keys it names.

Keys (all optional): ``edge_common.vocabulary.LiveParams``; e.g. route_low_confidence true,
analysis_url ``http://analysis:8004/analyze``, analysis_route edge or server with analysis_edge
0x02, focus_until an ISO 8601 time with focus_source 0x01 and the focus_rate, focus_conf,
focus_max_uploads overrides, help_for ``["0x01"]``.

help_for: the nids of the overloaded edges this worker analyses too (hot hand-off, see
``helping.py``; their camera URLs come from the live secrets file, never from here).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge_common.vocabulary import FOCUS_NUMBERS, AnalysisRoute, LiveParams, Param

log = logging.getLogger("edge_ai.yolo.routing")

# The routes a live file may name: the analysis moved away (LOCAL is its absence).
ANALYSIS_ROUTES = (AnalysisRoute.EDGE, AnalysisRoute.SERVER)


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
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


class Routing:
    def __init__(
        self,
        *,
        route_low_confidence: bool,
        analysis_url: str | None,
        routing_file: Path | None = None,
        vms_inbox: str | None = None,
    ):
        self._start: LiveParams = {
            Param.ROUTE_LOW_CONFIDENCE: route_low_confidence,
            Param.ANALYSIS_URL: analysis_url,
        }
        self.route_low_confidence = route_low_confidence
        self.analysis_url = analysis_url
        self.vms_inbox = vms_inbox  # the VMS's POST /analysis: where frames go when no URL is set
        self.analysis_route: AnalysisRoute | None = None
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
        now = now or datetime.now(timezone.utc)
        return self.focus_until is not None and now < self.focus_until

    def as_json(self) -> dict[str, Any]:
        return {
            Param.ROUTE_LOW_CONFIDENCE: self.route_low_confidence,
            Param.ANALYSIS_URL: self.target_url,
            "active": self.active,
            Param.ANALYSIS_ROUTE: self.analysis_route,
            Param.ANALYSIS_EDGE: self.analysis_edge,
            Param.FOCUS_UNTIL: self.focus_until.isoformat() if self.focus_until else None,
            Param.FOCUS_SOURCE: self.focus_source,
            "focused": self.focused(),
            Param.HELP_FOR: list(self.help_for),
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
            absent: LiveParams = {
                Param.ANALYSIS_ROUTE: None,
                Param.ANALYSIS_EDGE: None,
                Param.FOCUS_UNTIL: None,
                Param.FOCUS_SOURCE: None,
                Param.HELP_FOR: [],
            }
            body = {**self._start, **absent, **body}
            self.focus_overrides = {}
        if Param.ROUTE_LOW_CONFIDENCE in body:
            self.route_low_confidence = bool(body[Param.ROUTE_LOW_CONFIDENCE])
        if Param.ANALYSIS_URL in body:
            url = body[Param.ANALYSIS_URL]
            self.analysis_url = url.rstrip("/") if url else None
        if Param.ANALYSIS_ROUTE in body:
            route = body[Param.ANALYSIS_ROUTE]
            self.analysis_route = AnalysisRoute(route) if route else None
        if Param.ANALYSIS_EDGE in body:
            edge = body[Param.ANALYSIS_EDGE]
            self.analysis_edge = str(edge) if edge else None
        if Param.FOCUS_UNTIL in body:
            until = body[Param.FOCUS_UNTIL]
            self.focus_until = _parse_time(until) if until else None
        if Param.FOCUS_SOURCE in body:
            source = body[Param.FOCUS_SOURCE]
            self.focus_source = str(source) if source else None
        if Param.HELP_FOR in body:
            self.help_for = tuple(sorted({str(n) for n in body[Param.HELP_FOR] or ()}))
        for key in FOCUS_NUMBERS:
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
    flag = Param.ROUTE_LOW_CONFIDENCE
    if flag in body and not isinstance(body[flag], bool):
        return f"{flag}: expected true or false"
    url = body.get(Param.ANALYSIS_URL)
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        return f"{Param.ANALYSIS_URL}: expected an http(s) URL or null"
    route = body.get(Param.ANALYSIS_ROUTE)
    if route is not None and route not in ANALYSIS_ROUTES:
        routes = ", ".join(ANALYSIS_ROUTES)
        return f"{Param.ANALYSIS_ROUTE}: expected one of {routes} or null"
    helped = body.get(Param.HELP_FOR)
    if helped is not None and (
        not isinstance(helped, list)
        or not all(isinstance(n, str) and 0 < len(n) <= 32 for n in helped)
    ):
        return f"{Param.HELP_FOR}: expected a list of node ids"
    until = body.get(Param.FOCUS_UNTIL)
    if until is not None and (not isinstance(until, str) or _parse_time(until) is None):
        return f"{Param.FOCUS_UNTIL}: expected an ISO 8601 time or null"
    for key, (low, high) in FOCUS_NUMBERS.items():
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
