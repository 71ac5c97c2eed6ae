"""Live view through NAT: the request that reaches an edge over the connection it already holds
(the master publishes it on the edge's MQTT topic ``<prefix>/<nid>/live``), and the file the agent
writes for its workers, and what the VMS says of an edge's live feed (``GET /live/{nid}``:
``LiveFeedState``, read by the console). Both ends validate with these models; nothing here is a
secret."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_FPS = 2.0
DEFAULT_WIDTH = 640
DEFAULT_BUDGET_BPS = 256_000  # bytes a second an edge spends on its live view at most
DEFAULT_TTL_S = 6.0  # a request not renewed within this ends the view
VIEW_FILE = "view.json"  # in the agent's live folder, next to the workloads' live files


def live_topic(nid: str, prefix: str = "edge") -> str:
    """``edge/<nid>/live``: not retained (a request outlives nobody), QoS 1, master only."""
    return f"{prefix}/{nid}/live"


class LiveViewSettings(BaseModel):
    """What the operator picks for a view (the console's defaults: 2 fps, 640 px)."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(DEFAULT_FPS, gt=0, le=10, description="frames a second")
    width: int = Field(DEFAULT_WIDTH, ge=160, le=1920, description="frame width in pixels")
    budget_bps: int = Field(
        DEFAULT_BUDGET_BPS,
        ge=8_000,
        le=10_000_000,
        description="bytes a second the edge spends on the view at most (weak links): the worker "
        "lowers the JPEG quality, then skips frames, to stay within it",
    )


class LiveViewAsk(LiveViewSettings):
    """``POST /edges/{nid}/live-view`` on the master: start or renew (``ttl_s`` > 0), or stop
    (``ttl_s`` = 0)."""

    ttl_s: float = Field(
        DEFAULT_TTL_S, ge=0, le=60, description="the view ends unless renewed within this"
    )


class LiveViewRequest(LiveViewAsk):
    """The message on ``edge/<nid>/live``."""

    model_config = ConfigDict(extra="ignore")

    nid: str = Field(description="the edge this request is for; an agent ignores any other")


class LiveViewFile(LiveViewSettings):
    """What the agent writes to ``<live folder>/view.json``: the view runs until ``until`` (the
    edge's own clock: the agent adds ``ttl_s`` to its time of receipt)."""

    model_config = ConfigDict(extra="ignore")

    until: float = Field(description="time.time() on the edge after which nothing is sent")


class LiveFeedState(BaseModel):
    """The VMS's ``GET /live/{nid}``: what an edge has sent for its live view."""

    frames: int = Field(description="frames received (the VMS's sequence number)")
    bytes: int = Field(description="bytes of the latest frame")
    edge_seq: int = Field(description="the edge's own counter of the latest frame")
    last_frame_at: float | None = Field(description="unix time of the latest frame")
    problem: str | None = Field(description="why the edge sends no frame, as it said")
    problem_at: float | None = Field(description="unix time it said so")
