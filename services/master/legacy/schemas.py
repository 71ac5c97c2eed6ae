"""The field's master payloads (form fields or JSON), names exactly as the field sends them."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.master.uploads.schemas import AI_CLASS, FILENAME


class UploadEdgeAi(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = Field(pattern=FILENAME, description="the package folder's name in the master's package directory")
    version: str = Field(max_length=40)
    ai_class: str = Field(pattern=AI_CLASS)


class RemoveEdgeAi(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int = Field(description="AI id")


class DeviceAi(BaseModel):
    model_config = ConfigDict(extra="ignore")
    aid: int = Field(description="AI id; filename, version and ai_class are fetched from setup")
    eid: int | None = Field(None, description="edge id (our extension; the field had one node per AI)")
    edge: str | None = Field(None, description="edge name or nid, instead of eid")
