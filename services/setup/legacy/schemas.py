"""The field's request payloads (form fields or JSON), names exactly as the field sends them."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.setup.ai_packages.schemas import AiPackageCreate


class UploadRequest(AiPackageCreate):
    model_config = ConfigDict(extra="ignore")


class AiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    aid: int = Field(description="AI id")


class DeviceRequest(AiRequest):
    eid: int | None = Field(None, description="edge id; our extension (the field deployed to its only node)")
    edge: str | None = Field(None, description="edge name or nid, instead of eid")


class InfoRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int = Field(description="id of the uploaded AI")
