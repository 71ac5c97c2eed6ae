"""The wire vocabulary from the optimizer to the edge, defined once: the workload and deployment
states, the analysis route, and the deployment parameters a program reads (its live parameters
above all). The services (``shared.contracts``, the master's drivers, the optimizer's policies,
setup's columns) and the edge programs (the agent, the YOLO worker, monitoring) all import these
names; no other module spells their values.

Standard library only, Python 3.8 and newer (an edge runs JetPack's Python)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Final, TypedDict

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.8 to 3.10 (the edges)

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are their values as strings."""

        __str__ = str.__str__
        __format__ = str.__format__


__all__ = [
    "FOCUS_NUMBERS",
    "LIVE_PARAMS",
    "AnalysisRoute",
    "DesiredState",
    "LiveParams",
    "LiveSecrets",
    "ObservedState",
    "Param",
    "StrEnum",
    "WorkloadState",
    "is_live_param",
    "live_params",
]


# --- states ---------------------------------------------------------------------------------


class WorkloadState(StrEnum):
    """What a runtime (an edge agent, Docker, Kubernetes) reports of one workload. The agent
    reports these values; the master's drivers use the same enum."""

    PENDING = "pending"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"  # being taken away (an old instance, or a removed workload)


class DesiredState(StrEnum):
    """A deployment's wanted state (setup's ``deployments.desired``)."""

    RUNNING = "running"
    REMOVED = "removed"


class ObservedState(StrEnum):
    """A deployment's state as the master last reported it (setup's ``deployments.observed``)."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    REMOVED = "removed"


class AnalysisRoute(StrEnum):
    """Where an edge's analysis runs (the optimizer's routing of it)."""

    LOCAL = "local"  # the edge analyses its own camera
    EDGE = "edge"  # a helper edge analyses it
    SERVER = "server"  # the analysis server does


# --- deployment parameters --------------------------------------------------------------------


class Param:
    """The deployment parameter keys the platform itself writes and the programs read. Any other
    key of a deployment's ``params`` is the operator's (an environment variable of the program)."""

    # Live: the running program re-reads them (the agent's live file, EDGE_LIVE_FILE), no restart.
    ROUTE_LOW_CONFIDENCE: Final = "route_low_confidence"  # bool: hard frames go up
    ANALYSIS_URL: Final = "analysis_url"  # where the hard frames go (http(s) URL)
    ANALYSIS_ROUTE: Final = "analysis_route"  # AnalysisRoute.EDGE or .SERVER: analysis moved away
    ANALYSIS_EDGE: Final = "analysis_edge"  # the helper's nid (analysis_route "edge")
    HELP_FOR: Final = "help_for"  # nids this worker analyses too (hot hand-off)
    FOCUS: Final = "focus"  # the prefix of every focus key; True while in focus mode
    FOCUS_UNTIL: Final = "focus_until"  # ISO 8601: focus mode ends then
    FOCUS_SOURCE: Final = "focus_source"  # the nid whose event raised focus
    FOCUS_RATE: Final = "focus_rate"  # frames a second in focus mode
    FOCUS_CONF: Final = "focus_conf"  # confidence threshold in focus mode
    FOCUS_MAX_UPLOADS: Final = "focus_max_uploads"  # frames sent up a second in focus mode
    # Read once, at start (an environment variable of the program): a helper copy's source.
    ANALYSIS_FOR: Final = "analysis_for"  # the helped nid: this copy analyses its camera
    SOURCE_EDGE_ID: Final = "source_edge_id"  # the helped edge's id (setup's)
    # The live secrets file's key (EDGE_LIVE_SECRETS_FILE): the cameras of the helped edges.
    HELP_SOURCES: Final = "help_sources"


class LiveParams(TypedDict, total=False):
    """The live file a program re-reads (``EDGE_LIVE_FILE``, JSON): every key optional; a key it
    no longer has goes back to the program's start value."""

    route_low_confidence: bool
    analysis_url: str | None
    analysis_route: str | None  # an AnalysisRoute value
    analysis_edge: str | None
    help_for: list[str]
    focus: bool
    focus_until: str | None
    focus_source: str | None
    focus_rate: float
    focus_conf: float
    focus_max_uploads: float


class LiveSecrets(TypedDict, total=False):
    """The live secrets file (``EDGE_LIVE_SECRETS_FILE``, JSON, 0600)."""

    help_sources: dict[str, str]  # helped nid -> its camera URL (with credentials)


# The routing keys a program takes hot; with every ``focus*`` key (see ``is_live_param``).
LIVE_PARAMS: frozenset[str] = frozenset(
    {Param.ROUTE_LOW_CONFIDENCE, Param.ANALYSIS_URL, Param.ANALYSIS_ROUTE, Param.ANALYSIS_EDGE}
)
# The focus profile's numbers a live file may override, with their allowed ranges.
FOCUS_NUMBERS: dict[str, tuple[float, float]] = {
    Param.FOCUS_RATE: (0.0, 1000.0),
    Param.FOCUS_CONF: (0.0, 1.0),
    Param.FOCUS_MAX_UPLOADS: (0.0, 1000.0),
}


def is_live_param(key: str) -> bool:
    """A param the program re-reads while it runs (``focus``, ``focus_until``, ``focus_rate``...
    included), rather than one it reads once at start."""
    return key in LIVE_PARAMS or key.startswith(Param.FOCUS)


def live_params(params: dict[str, object] | None) -> dict[str, object]:
    """The live subset of a deployment's params."""
    return {k: v for k, v in (params or {}).items() if is_live_param(k)}
