from __future__ import annotations

from pydantic import BaseModel, Field

from shared.contracts.events import Event, EventType

__all__ = ["Event", "EventAccepted", "EventType"]


class EventAccepted(BaseModel):
    accepted: bool = True
    type: EventType
    scope: str = Field(
        description="edge: a decision for the edges concerned; fleet: a whole-fleet cycle; none"
    )
    focus_until: str | None = None
