from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ControlsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"dry_run": True}]},
    )
    paused: bool | None = Field(None, description="global pause: no cycle runs")
    dry_run: bool | None = Field(None, description="decide and record, act on nothing")


class PinIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "camera maintenance"}]}
    )
    reason: str = Field("", max_length=2000)


class PolicyOut(BaseModel):
    name: str
    enabled: bool
    effective: dict[str, Any]
    defaults: dict[str, Any]
    overrides: dict[str, Any]


class PolicyChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    policy: str
    changed_by: str = Field(description='who, and from where: "operator (edgectl)"')
    changes: dict[str, Any] = Field(description="the settings asked for (a reset: none)")
    reset: bool = Field(description="back to the settings' defaults")


class CycleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"edges": ["1"]}]})
    edges: list[str] | None = Field(
        None, description="edge ids, names or nids; default the whole fleet"
    )
