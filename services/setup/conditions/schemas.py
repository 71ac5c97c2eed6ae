from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONDITION = r"^[A-Z][A-Z0-9_]{0,31}$"


class ConditionMapping(BaseModel):
    """code -> condition (what the environment AI's result means) and condition -> ai_class (which
    variant)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "codes": {"0": "SUNNY", "2": "RAINY"},
                    "ai_classes": {"SUNNY": "01", "RAINY": "02"},
                }
            ]
        },
    )
    codes: dict[str, str] = Field(description='e.g. {"0": "SUNNY", "2": "RAINY"}')
    ai_classes: dict[str, str] = Field(description='e.g. {"SUNNY": "01", "RAINY": "02"}')

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for code, condition in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", code):
                raise ValueError(f"code {code!r} must be 1-16 letters, digits, _ or -")
            if not re.fullmatch(CONDITION, condition):
                raise ValueError(
                    f"condition {condition!r} for code {code!r} "
                    "must be an upper-case word like RAINY"
                )
        return value

    @field_validator("ai_classes")
    @classmethod
    def _classes(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for condition, ai_class in value.items():
            if not re.fullmatch(CONDITION, condition):
                raise ValueError(f"condition {condition!r} must be an upper-case word like RAINY")
            if not re.fullmatch(r"[0-9]{2}", ai_class):
                raise ValueError(f"ai_class {ai_class!r} for {condition} must be two digits")
        return value
