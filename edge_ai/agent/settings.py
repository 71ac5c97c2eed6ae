"""The agent's settings: AGENT_* variables (and a few EDGE_* under their fixed names)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.agent_keys import agent_key, derived_secret
from shared.mqtt import parse_broker_url
from shared.settings import LOCAL_SERVICE_TOKEN


class AgentSettings(BaseSettings):
    """Not a ServiceSettings: an edge box holds no database, no operator token, no service
    credential and no signing secret: only its own key (what the master presents to it) and its
    own edge token (what it presents to the platform), neither of which can change the fleet."""

    model_config = SettingsConfigDict(env_prefix="AGENT_", extra="ignore", populate_by_name=True)

    env: Literal["local", "production"] = Field(
        "production", validation_alias=AliasChoices("EDGE_ENV")
    )
    key: SecretStr | None = Field(
        None, description="this agent's key: the master's calls must carry it (edgectl agent-key)"
    )
    nid: str | None = Field(None, description="the edge's node id (default: its edge token's)")
    edge_token: SecretStr | None = Field(
        None, description="the edge's token from setup (kept renewed in workdir/edge-token)"
    )
    setup_url: str = Field(
        "http://127.0.0.1:8001", validation_alias=AliasChoices("AGENT_SETUP_URL", "EDGE_SETUP_URL")
    )
    token_renew_before_s: float = Field(
        10 * 86400, description="renew the edge token when less than this is left"
    )
    token_check_s: float = Field(3600, gt=0, description="how often the token's expiry is checked")
    tls_cert_file: str | None = Field(None, description="serve https with this certificate (PEM)")
    tls_key_file: str | None = Field(None, description="... and this private key")
    master_ca_file: str | None = Field(
        None, description="CA bundle the master and setup are verified with (https)"
    )
    master_url: str = Field(
        "http://127.0.0.1:8002",
        validation_alias=AliasChoices("AGENT_MASTER_URL", "EDGE_MASTER_URL"),
    )
    log_level: str = Field("INFO", validation_alias=AliasChoices("EDGE_LOG_LEVEL"))
    log_format: Literal["json", "text"] = Field(
        "json", validation_alias=AliasChoices("EDGE_LOG_FORMAT")
    )

    # Pull mode (an edge behind NAT): no listening socket at all; one outgoing MQTT connection
    # for update notices, then outgoing HTTPS to the master for the desired set and reports.
    mode: Literal["push", "pull"] = Field(
        "push",
        description="push: the master calls this agent's API; pull: the agent listens on "
        "nothing, waits for MQTT notices and pulls its desired set from the master",
    )
    mqtt_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AGENT_MQTT_URL", "EDGE_MQTT_URL"),
        description="the broker (pull mode): mqtt://host:1883 or mqtts://host:8883",
    )
    mqtt_username: str | None = Field(None, description="this agent's broker user (its nid)")
    mqtt_password: SecretStr | None = Field(None, description="... and its password")
    mqtt_ca_file: str | None = Field(None, description="CA bundle the broker is verified with")
    mqtt_cert_file: str | None = Field(None, description="client certificate for the broker")
    mqtt_key_file: str | None = Field(None, description="... and its private key")
    mqtt_topic_prefix: str = "edge"
    report_s: float = Field(30.0, gt=0, description="pull mode: report observed state this often")
    poll_s: float = Field(
        900.0,
        gt=0,
        description="pull mode: ask for the desired set this often even without a notice "
        "(a safety net: notices are retained, so a reconnect brings the latest)",
    )

    node: str = "edge"
    host: str = "127.0.0.1"
    port: int = 8010
    workdir: Path = Path("./edge-agent")

    # Fetching and unpacking packages.
    fetch_timeout_s: float = 300.0
    max_package_bytes: int = 2 * 1024**3
    max_unpacked_bytes: int = 8 * 1024**3
    max_files: int = 20_000
    cache_keep: int = (
        8  # archives kept beyond those the desired set uses (delta bases, quick rollback)
    )

    # A package's Python dependencies (its manifest's requirements): installed from the wheels it
    # ships, or from this site index when set (never from anywhere else).
    pip_index_url: str | None = Field(
        None, description="a site package index for packages' requirements (default: none)"
    )
    pip_timeout_s: float = Field(900.0, gt=0, description="the longest one install may take")

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
    def _key_required_outside_local(self) -> AgentSettings:
        if self.nid is None and self.edge_token is not None:
            from edge_ai.agent.credentials import token_nid

            self.nid = token_nid(self.edge_token.get_secret_value())
        if self.mode == "pull":
            # Nothing calls a pull agent: it needs no key, only its edge token.
            if self.mqtt_url is None:
                raise ValueError("pull mode needs AGENT_MQTT_URL (or EDGE_MQTT_URL)")
            try:
                parse_broker_url(self.mqtt_url)
            except ValueError as exc:  # at start, once: not a reconnect warning forever after
                raise ValueError(f"AGENT_MQTT_URL: {exc}") from None
            for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
                path = getattr(self, name)
                if path and not Path(path).is_file():
                    raise ValueError(f"AGENT_{name.upper()}: {path} is not a file")
            if self.edge_token is None and not (self.workdir / "edge-token").is_file():
                raise ValueError(
                    "pull mode needs the edge's own token: AGENT_EDGE_TOKEN or WORKDIR/edge-token"
                )
            if not self.nid and not (self.workdir / "edge-token").is_file():
                raise ValueError("pull mode needs the edge's node id: AGENT_NID or its edge token")
            self.master_url = self.master_url.rstrip("/")
            return self
        if self.env == "local" and self.key is None:
            # The key the master derives in local mode (shared.agent_keys), from the node id.
            local_secret = derived_secret(LOCAL_SERVICE_TOKEN)
            self.key = SecretStr(agent_key(local_secret, self.nid or self.node))
        if self.key is None or (self.env != "local" and len(self.key.get_secret_value()) < 16):
            raise ValueError(
                "AGENT_KEY must be set (16 characters or more; `edgectl agent-key NID` prints it) "
                "outside local mode (EDGE_ENV=local)"
            )
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("AGENT_TLS_CERT_FILE and AGENT_TLS_KEY_FILE go together")
        self.master_url = self.master_url.rstrip("/")
        return self

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What the agent verifies the master's and setup's certificates with."""
        if self.master_ca_file:
            return ssl.create_default_context(cafile=self.master_ca_file)
        return True

    def secret_values(self) -> list[str]:
        return [
            s.get_secret_value()
            for s in (self.key, self.edge_token, self.mqtt_password)
            if s is not None
        ]
