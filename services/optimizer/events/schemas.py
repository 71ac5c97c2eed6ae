from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["condition_changed", "ai_ready", "deployment_failed", "overloaded", "low_confidence", "detection"]


class Event(BaseModel):
    """What the VMS, the master and setup push. Extra top-level fields (condition, counts, at...) are kept."""

    model_config = ConfigDict(extra="allow")
    type: EventType
    nid: str | None = Field(None, max_length=32)
    edge_id: int | None = None
    ai_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class EventAccepted(BaseModel):
    accepted: bool = True
    type: str
    scope: str = Field(description="edge: a decision for the edges concerned; fleet: a whole-fleet cycle; none")
    focus_until: str | None = None
