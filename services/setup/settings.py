from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class SetupSettings(ServiceSettings):
    """Setup's settings; its own are read with the SETUP_ prefix (e.g. SETUP_PORT)."""

    model_config = SettingsConfigDict(env_prefix="SETUP_", extra="ignore", populate_by_name=True)

    service_name: str = "setup"
    # Ask the master to act on changes (upload/deploy through the master). Off: record only.
    notify_master: bool = True
    max_page_size: int = 10_000
    max_bulk_body_bytes: int = 64 * 1024 * 1024
