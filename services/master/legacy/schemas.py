"""The field's master payloads (form fields or JSON), names exactly as the field sends them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.master.uploads.schemas import AI_CLASS, FILENAME
from shared.field_numbers import field_texts


class UploadEdgeAi(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = Field(
        pattern=FILENAME, description="the package folder's name in the master's package directory"
    )
    version: str = Field(max_length=40)
    ai_class: str = Field(pattern=AI_CLASS)

    @model_validator(mode="before")
    @classmethod
    def _numbers_as_text(cls, data: Any) -> Any:
        # The field's scripts send version/ai_class as JSON numbers at times: 1 means "01".
        return field_texts(data, "version", "ai_class")


class RemoveEdgeAi(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int = Field(description="AI id")


class DeviceAi(BaseModel):
    model_config = ConfigDict(extra="ignore")
    aid: int = Field(description="AI id; filename, version and ai_class are fetched from setup")
    eid: int | None = Field(
        None, description="edge id (our extension; the field had one node per AI)"
    )
    edge: str | None = Field(None, description="edge name or nid, instead of eid")
