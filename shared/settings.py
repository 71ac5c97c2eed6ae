"""Typed settings. Every service subclasses ServiceSettings with its own env prefix.

A few settings are read under fixed names by every service (EDGE_DATABASE_URL,
EDGE_OPERATOR_TOKEN, EDGE_*_URL ...); everything else is prefixed per service,
e.g. SETUP_PORT or VMS_GROUP_COMMIT_WINDOW_MS.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_OPERATOR_TOKEN = "local-operator-token"
LOCAL_SERVICE_TOKEN = "local-service-token"
LOCAL_EDGE_TOKEN_SECRET = "local-edge-token-secret"
SERVICE_NAMES = ("setup", "master", "optimizer", "vms", "analysis")
# Networks an agent_url may point to unless EDGE_AGENT_ALLOWED_NETWORKS says otherwise: loopback
# and the private ranges. Link-local (169.254/16, fe80::/10, cloud metadata), multicast and the
# unspecified address are refused whatever this says.
DEFAULT_AGENT_NETWORKS = "loopback,private"


def _fixed(name: str) -> AliasChoices:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None, populate_by_name=True)

    service_name: str = "service"
    # Each service's settings class declares its own (SETUP_PORT etc. override it).
    default_port: ClassVar[int] = 8000

    # Read by every service under fixed names.
    env: Literal["local", "production"] = Field(
        "production",
        validation_alias=_fixed("EDGE_ENV"),
        description="local: development defaults for the secrets below",
    )
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/edge",
        validation_alias=_fixed("EDGE_DATABASE_URL"),
        description="Postgres (asyncpg driver); each service uses its own schema",
    )
    operator_token: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_OPERATOR_TOKEN"),
        description="the operator's bearer token (16+ characters)",
    )
    service_token: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_SERVICE_TOKEN"),
        description="root of the services' own credentials (each derived from it unless set)",
    )
    edge_token_secret: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_EDGE_TOKEN_SECRET"),
        description="signs the edges' own tokens (verified offline)",
    )
    setup_token: SecretStr | None = Field(
        None, validation_alias=_fixed("EDGE_SETUP_TOKEN"), description="setup's own credential"
    )
    master_token: SecretStr | None = Field(
        None, validation_alias=_fixed("EDGE_MASTER_TOKEN"), description="the master's credential"
    )
    optimizer_token: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_OPTIMIZER_TOKEN"),
        description="the optimizer's own credential",
    )
    vms_token: SecretStr | None = Field(
        None, validation_alias=_fixed("EDGE_VMS_TOKEN"), description="the VMS's own credential"
    )
    analysis_token: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_ANALYSIS_TOKEN"),
        description="the analysis service's own credential",
    )
    accept_service_token: bool | None = Field(
        None,
        validation_alias=_fixed("EDGE_ACCEPT_SERVICE_TOKEN"),
        description="EDGE_SERVICE_TOKEN itself is a (scoped) credential; default: in local mode",
    )
    edge_token_ttl_s: int = Field(
        30 * 86400,
        ge=5,
        validation_alias=_fixed("EDGE_EDGE_TOKEN_TTL_S"),
        description="lifetime of an edge token (agents renew)",
    )
    revocations_refresh_s: float = Field(
        30.0,
        gt=0,
        validation_alias=_fixed("EDGE_REVOCATIONS_REFRESH_S"),
        description="full re-read of the edge-token revocations (changes are pushed at once)",
    )
    agent_allowed_networks: str = Field(
        DEFAULT_AGENT_NETWORKS,
        validation_alias=_fixed("EDGE_AGENT_ALLOWED_NETWORKS"),
        description="comma list an agent_url may resolve to: CIDR networks, or loopback, private",
    )
    agent_key_secret: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_AGENT_KEY_SECRET"),
        description="each agent's key is derived from it (default: from EDGE_SERVICE_TOKEN)",
    )
    agent_ca_file: str | None = Field(
        None,
        validation_alias=_fixed("EDGE_AGENT_CA_FILE"),
        description="CA bundle the master verifies https agents with",
    )
    open_reads: bool = Field(
        False, validation_alias=_fixed("EDGE_OPEN_READS"), description="reads without a token"
    )
    setup_url: str = Field(
        "http://127.0.0.1:8001",
        validation_alias=_fixed("EDGE_SETUP_URL"),
        description="setup's base URL",
    )
    master_url: str = Field(
        "http://127.0.0.1:8002",
        validation_alias=_fixed("EDGE_MASTER_URL"),
        description="the master's base URL",
    )
    optimizer_url: str = Field(
        "http://127.0.0.1:8003",
        validation_alias=_fixed("EDGE_OPTIMIZER_URL"),
        description="the optimizer's base URL",
    )
    vms_url: str = Field(
        "http://127.0.0.1:6432",
        validation_alias=_fixed("EDGE_VMS_URL"),
        description="the VMS's base URL",
    )
    # Named apart from the optimizer's own analysis_url (where YOLO workers post their frames).
    analysis_service_url: str = Field(
        "http://127.0.0.1:8004",
        validation_alias=_fixed("EDGE_ANALYSIS_URL"),
        description="the analysis service's base URL",
    )
    log_level: str = Field(
        "INFO", validation_alias=_fixed("EDGE_LOG_LEVEL"), description="DEBUG, INFO, WARNING, ERROR"
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        validation_alias=_fixed("EDGE_LOG_FORMAT"),
        description="json lines (with request id) or text",
    )
    migrate_on_start: bool = Field(
        True,
        validation_alias=_fixed("EDGE_MIGRATE_ON_START"),
        description="apply the service's migrations at start",
    )
    db_pool_size: int = Field(
        10, validation_alias=_fixed("EDGE_DB_POOL_SIZE"), description="connections per process"
    )
    db_pool_timeout_s: float = Field(
        3.0,
        gt=0,
        validation_alias=_fixed("EDGE_DB_POOL_TIMEOUT_S"),
        description="how long a request waits for a pooled database connection before it is "
        "answered 503 + Retry-After",
    )

    # Per-service (prefixed) settings.
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(0, description="0: the service's default port")
    max_body_bytes: int = Field(1_048_576, description="request body limit (413 above)")

    @model_validator(mode="after")
    def _secrets_required_outside_local(self) -> ServiceSettings:
        if self.env == "local":
            if self.operator_token is None:
                self.operator_token = SecretStr(LOCAL_OPERATOR_TOKEN)
            if self.service_token is None:
                self.service_token = SecretStr(LOCAL_SERVICE_TOKEN)
            if self.edge_token_secret is None:
                self.edge_token_secret = SecretStr(LOCAL_EDGE_TOKEN_SECRET)
        else:
            missing = [
                name
                for name, value in (
                    ("EDGE_OPERATOR_TOKEN", self.operator_token),
                    ("EDGE_SERVICE_TOKEN", self.service_token),
                    ("EDGE_EDGE_TOKEN_SECRET", self.edge_token_secret),
                )
                if value is None or len(value.get_secret_value()) < 16
            ]
            if missing:
                raise ValueError(
                    "outside local mode (EDGE_ENV=local) these "
                    "secrets must be set, 16 characters or more: " + ", ".join(missing)
                )
        if not self.port:
            self.port = self.default_port
        return self

    @property
    def accepts_service_token(self) -> bool:
        if self.accept_service_token is None:
            return self.env == "local"
        return self.accept_service_token

    def service_credentials(self) -> dict[str, str]:
        """Each service's own credential: set explicitly, or derived from EDGE_SERVICE_TOKEN (an
        HMAC per service name, so no two services share one)."""
        out: dict[str, str] = {}
        for name in SERVICE_NAMES:
            explicit = getattr(self, f"{name}_token")
            if explicit is not None:
                out[name] = explicit.get_secret_value()
            elif self.service_token is not None:
                root = self.service_token.get_secret_value().encode()
                digest = hmac.new(root, f"service:{name}".encode(), hashlib.sha256).hexdigest()
                out[name] = "svc_" + digest[:40]
        return out

    def agent_key_for(self, nid: str) -> str:
        """The key the master presents to the agent of node ``nid`` (shared.agent_keys)."""
        from shared.agent_keys import agent_key, derived_secret

        if self.agent_key_secret is not None:
            secret = self.agent_key_secret.get_secret_value()
        else:
            root = self.service_token.get_secret_value() if self.service_token else ""
            secret = derived_secret(root)
        return agent_key(secret, nid)

    def own_credential(self) -> str:
        """What this service sends when it calls another one."""
        return self.service_credentials().get(self.service_name, "")

    @property
    def service_package(self) -> str:
        """The package the service lives in (its migrations are under it): the package of the module
        that defines its settings class (``services.setup.settings`` -> ``services.setup``)."""
        return type(self).__module__.rpartition(".")[0]

    def secret_values(self) -> list[str]:
        """Every secret this process knows, so that logs can redact them."""
        return [
            s.get_secret_value()
            for s in (
                self.operator_token,
                self.service_token,
                self.edge_token_secret,
                self.agent_key_secret,
            )
            if s is not None
        ] + list(self.service_credentials().values())


def settings_class(module_name: str) -> type[BaseSettings]:
    """The Settings class a module defines (``services.vms.settings`` -> ``VmsSettings``)."""
    import importlib

    module = importlib.import_module(module_name)
    return next(
        value
        for name, value in vars(module).items()
        if name.endswith("Settings")
        and isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value.__module__ == module.__name__
    )
