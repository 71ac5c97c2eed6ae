"""Events the optimizer takes on POST /events: from the VMS (condition_changed, low_confidence,
detection) and the master (ai_ready, deployment_failed). Each is a reason to decide soon; the
optimizer reads the facts themselves from setup and the VMS."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    CONDITION_CHANGED = "condition_changed"  # VMS: a node's condition changed
    LOW_CONFIDENCE = "low_confidence"  # VMS: a node's low-confidence share crossed the threshold
    DETECTION = "detection"  # VMS: a summary saw one of the watched classes
    AI_READY = "ai_ready"  # master: an AI package's image is built
    DEPLOYMENT_FAILED = "deployment_failed"  # master: a deployment was observed failed


class Event(BaseModel):
    """One event; the fields beside ``type`` that its producer fills. Unknown fields are ignored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "condition_changed",
                    "nid": "0x31",
                    "condition": "RAINY",
                    "previous": "SUNNY",
                }
            ]
        }
    )

    type: EventType
    nid: str | None = Field(None, max_length=32)
    edge_id: int | None = None
    ai_id: int | None = None
    deployment_id: int | None = None
    at: datetime | None = None
    condition: str | None = None  # condition_changed
    previous: str | None = None
    share: float | None = None  # low_confidence
    threshold: float | None = None
    counts: dict[str, int] = Field(default_factory=dict)  # detection: class -> count
    data: dict[str, Any] = Field(default_factory=dict)  # the producer's details (logged, not read)
