from __future__ import annotations

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


class CycleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"edges": ["1"]}]})
    edges: list[str] | None = Field(
        None, description="edge ids, names or nids; default the whole fleet"
    )
