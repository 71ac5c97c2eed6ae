from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.master import AiPackageRecord

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


class UploadAccepted(BaseModel):
    """The AI row as setup holds it, with the stored package; the build goes on in the
    background."""

    ai: AiPackageRecord
    package_digest: str
    package_size: int
    stored: bool = Field(description="False when the same bytes were already in the store")
    build: str = Field(
        description="queued, running (a build of this AI was already under way) or ready"
    )
