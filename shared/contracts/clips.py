"""The VMS's event clips as it answers them (GET /clips, GET /clips/{id}): read by the console
and ``edgectl``. Times are ISO 8601 text, as the VMS writes them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Clip(BaseModel):
    id: str = Field(description="the file's SHA-256 (64 hex digits)")
    nid: str
    event: str = Field(description="what raised it")
    started_at: str = Field(description="ISO 8601")
    duration_s: float
    classes: list[str] = Field(description="the classes detected in it")
    size: int = Field(description="bytes")
    stored_at: str = Field(description="ISO 8601")


class ClipPage(BaseModel):
    items: list[Clip]
    total: int
    limit: int
    offset: int
