from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.fleet import PackageStatus
from shared.versions import validate_version

FILENAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
AI_CLASS = r"^[0-9]{2}$"
CONDITION = r"^[A-Z][A-Z0-9_]{0,31}$"


def _version(value: Any) -> str:
    from shared.errors import Invalid

    try:
        return validate_version(str(value))
    except Invalid as exc:
        raise ValueError(exc.message) from exc


class AiPackageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filename": "monitoring",
                    "version": "01",
                    "ai_class": "00",
                    "description": "weather",
                }
            ]
        },
    )
    filename: str = Field(pattern=FILENAME, description="package name, e.g. monitoring")
    version: str = Field(description='dotted numbers: "01" < "02" < "10"')
    ai_class: str = Field(
        pattern=AI_CLASS, description='two digits, e.g. "00" weather, "01" SUNNY variant'
    )
    condition: str | None = Field(
        None, pattern=CONDITION, description="the condition this variant is made for"
    )
    description: str = Field("", max_length=2000)

    _v = field_validator("version", mode="before")(lambda cls, v: _version(v))
    _c = field_validator("ai_class", "filename", mode="before")(
        lambda cls, v: str(v).strip() if v is not None else v
    )


class AiPackageUpdate(BaseModel):
    """Status and build results (the master reports them), or condition/description (the
    operator)."""

    model_config = ConfigDict(extra="forbid")
    status: PackageStatus | None = None
    failure_reason: str | None = Field(None, max_length=4000)
    condition: str | None = Field(None, pattern=CONDITION)
    description: str | None = Field(None, max_length=2000)
    package_digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    package_size: int | None = Field(None, ge=0)
    manifest: dict[str, Any] | None = None
    image_ref: str | None = Field(None, max_length=500)
    image_digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")


class AiPackageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    filename: str
    version: str
    ai_class: str
    condition: str | None
    description: str
    package_digest: str | None
    package_size: int | None
    manifest: dict[str, Any] | None
    image_ref: str | None
    image_digest: str | None
    status: PackageStatus
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
