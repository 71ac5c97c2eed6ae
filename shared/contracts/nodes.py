"""The VMS's current state of its nodes (GET /nodes/state), read by the optimizer every cycle, and
a node's observations over time (GET /nodes/{nid}/series: ``NodeSeries``, read by the console).

Tens of MB at 100,000 nodes, built as JSON by Postgres: readers parse it with orjson into these
TypedDicts; ``NODE_STATES.validate_json`` checks an answer fully (the contract tests do). Times
are ISO 8601 text, as on the wire.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict


class NodeUsage(TypedDict):
    """The last usage report and its smoothed averages (percent)."""

    at: str
    cpu: float | None
    memory: float | None
    func: str | None
    cpu_avg: float | None
    memory_avg: float | None


class NodeDetections(TypedDict, total=False):
    """The last detection summary (the fields the edge sent, among them these) and the smoothed
    share of results below the confidence threshold."""

    at: str
    frames: int
    frames_sent_up: int
    counts: dict[str, int]
    low_confidence_share: float | None
    analysed_by: str | None  # the helper edge that analysed the node's camera
    source_unavailable: str  # the camera gave no frame (present only then)
    analysis_unavailable: str  # the analysis service refused the uploads (present only then)


class NodeState(TypedDict):
    nid: str
    known: bool
    authenticated: bool
    condition: str | None
    condition_code: str | None
    previous_condition: str | None
    streak: int
    condition_since: str | None
    environment_at: str | None
    usage: NodeUsage | None
    detections: NodeDetections | None
    last_seen: str | None
    stale: bool


class NodeStates(TypedDict):
    """The whole answer; with ``?since=``, only the nodes whose state changed after it."""

    items: list[NodeState]
    generated_at: str  # the VMS's database clock
    stale_after_s: float
    conditions: dict[str, str]  # environment AI result code -> condition


NODE_STATES: TypeAdapter[NodeStates] = TypeAdapter(NodeStates)


class NodeSeries(BaseModel):
    """GET /nodes/{nid}/series: one point a step (``t``: the bucket's start, ISO 8601; the other
    keys: the kind's averages, or sums for detections; for detections also ``analysed_by``, the
    helper edges' nids that analysed the node's camera in that step)."""

    nid: str
    kind: Literal["usage", "environment", "detections"]
    start: str = Field(description="ISO 8601")
    end: str = Field(description="ISO 8601")
    step_s: float
    points: list[dict[str, float | int | str | list[str] | None]]
