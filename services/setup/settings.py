from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class SetupSettings(ServiceSettings):
    """Setup's settings; its own are read with the SETUP_ prefix (e.g. SETUP_PORT)."""

    model_config = SettingsConfigDict(env_prefix="SETUP_", extra="ignore", populate_by_name=True)

    service_name: str = "setup"
    notify_master: bool = Field(True, description="ask the master to act on changes at once (off: record only)")
    max_bulk_body_bytes: int = Field(64 * 1024 * 1024, description="body limit of POST /deployments/bulk")
