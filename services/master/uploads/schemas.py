from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The same rules as setup's AI rows (kept here: services share no Python state).
FILENAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
AI_CLASS = r"^[0-9]{2}$"
CONDITION = r"^[A-Z][A-Z0-9_]{0,31}$"


class UploadFields(BaseModel):
    """Names an upload may carry (query string or form fields); each given one must match the
    manifest."""

    model_config = ConfigDict(extra="ignore")
    filename: str | None = Field(None, pattern=FILENAME)
    version: str | None = Field(None, max_length=40)
    ai_class: str | None = Field(None, pattern=AI_CLASS)
    condition: str | None = Field(None, pattern=CONDITION)
    description: str | None = Field(None, max_length=2000)
