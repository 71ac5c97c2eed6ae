"""The agent's settings: AGENT_* variables, plus the platform's service token under its fixed name."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import LOCAL_SERVICE_TOKEN


class AgentSettings(BaseSettings):
    """Not a ServiceSettings: an edge box holds no database and must not hold the operator's token or
    the edge-token signing secret, only the master's service token."""

    model_config = SettingsConfigDict(env_prefix="AGENT_", extra="ignore", populate_by_name=True)

    env: Literal["local", "production"] = Field("production", validation_alias=AliasChoices("EDGE_ENV"))
    service_token: SecretStr | None = Field(None, validation_alias=AliasChoices("EDGE_SERVICE_TOKEN"))
    master_url: str = Field("http://127.0.0.1:8002", validation_alias=AliasChoices("AGENT_MASTER_URL", "EDGE_MASTER_URL"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("EDGE_LOG_LEVEL"))
    log_format: Literal["json", "text"] = Field("json", validation_alias=AliasChoices("EDGE_LOG_FORMAT"))

    node: str = "edge"
    host: str = "127.0.0.1"
    port: int = 8010
    workdir: Path = Path("./edge-agent")

    # Fetching and unpacking packages.
    fetch_timeout_s: float = 300.0
    max_package_bytes: int = 2 * 1024**3
    max_unpacked_bytes: int = 8 * 1024**3
    max_files: int = 20_000
    cache_keep: int = 8  # archives kept beyond those the desired set uses (delta bases, quick rollback)

    # Supervision.
    ready_grace_s: float = 2.0  # a (re)started process alive this long counts as running
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    stable_after_s: float = 30.0  # a run this long resets the backoff and the crash-loop count
    crash_loop_limit: int = 5  # quick failures in a row before the workload is marked failed
    stop_timeout_s: float = 10.0  # SIGTERM, then SIGKILL after this
    log_ring_lines: int = 500
    log_file_max_bytes: int = 5 * 1024**2

    @model_validator(mode="after")
    def _token_required_outside_local(self) -> "AgentSettings":
        if self.env == "local" and self.service_token is None:
            self.service_token = SecretStr(LOCAL_SERVICE_TOKEN)
        if self.service_token is None or (self.env != "local" and len(self.service_token.get_secret_value()) < 16):
            raise ValueError("EDGE_SERVICE_TOKEN must be set (16 characters or more) outside local mode (EDGE_ENV=local)")
        self.master_url = self.master_url.rstrip("/")
        return self

    def secret_values(self) -> list[str]:
        return [self.service_token.get_secret_value()] if self.service_token else []
