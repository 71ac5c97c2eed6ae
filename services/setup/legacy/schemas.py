"""The field's request payloads (form fields or JSON), names exactly as the field sends them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.setup.ai_packages.schemas import AiPackageCreate
from shared.field_numbers import field_texts


class UploadRequest(AiPackageCreate):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"filename": "monitoring", "version": "02", "ai_class": "00"}]
        },
    )

    @model_validator(mode="before")
    @classmethod
    def _numbers_as_text(cls, data: Any) -> Any:
        # The field's scripts send version/ai_class as JSON numbers at times: 1 means "01".
        return field_texts(data, "version", "ai_class")


class AiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"aid": 2}]})
    aid: int = Field(description="AI id")


class DeviceRequest(AiRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"aid": 1, "edge": "gate-cam-3"}]})
    eid: int | None = Field(
        None, description="edge id; our extension (the field deployed to its only node)"
    )
    edge: str | None = Field(None, description="edge name or nid, instead of eid")


class InfoRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int = Field(description="id of the uploaded AI")
