"""Typed settings. Every service subclasses ServiceSettings with its own env prefix.

A few settings are read under fixed names by every service (EDGE_DATABASE_URL,
EDGE_OPERATOR_TOKEN, EDGE_*_URL ...); everything else is prefixed per service,
e.g. SETUP_PORT or VMS_GROUP_COMMIT_WINDOW_MS.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from shared.signing import KeyRing, Signer

log = logging.getLogger("edge.settings")

LOCAL_OPERATOR_TOKEN = "local-operator-token"
LOCAL_SERVICE_TOKEN = "local-service-token"
LOCAL_EDGE_TOKEN_SECRET = "local-edge-token-secret"
SERVICE_NAMES = ("setup", "master", "optimizer", "vms", "analysis", "console")
# The services that had HMAC credentials derived from EDGE_SERVICE_TOKEN (before the console had
# a credential of its own).
LEGACY_SERVICE_NAMES = ("setup", "master", "optimizer", "vms", "analysis")
# The signing key of local mode (EDGE_ENV=local) only: a fixed, public development key, so that a
# service started alone in local mode verifies and sends credentials without setup. Never outside
# local mode.
LOCAL_SIGNING_SEED = b"edge-platform-local-signing-key!"
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
    # Whether the service checks the operator's token (every service but the console, which
    # holds none: it exchanges the one presented at sign-in at setup).
    checks_operator_token: ClassVar[bool] = True

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
        description="the operator's bearer token (16+ characters); give the services "
        "EDGE_OPERATOR_TOKEN_SHA256 instead, so that they can check it but not present it",
    )
    operator_token_sha256: str | None = Field(
        None,
        validation_alias=_fixed("EDGE_OPERATOR_TOKEN_SHA256"),
        description="the SHA-256 (hex) of the operator's token: accepted without being held",
    )
    public_keys: str | None = Field(
        None,
        validation_alias=_fixed("EDGE_PUBLIC_KEYS"),
        description="setup's public keys (comma list, base64url; `edgectl credentials keys`) "
        "verified with besides those read from setup's GET /keys",
    )
    fetch_public_keys: bool = Field(
        True,
        validation_alias=_fixed("EDGE_FETCH_PUBLIC_KEYS"),
        description="read setup's public keys from its GET /keys (at start, then periodically)",
    )
    public_keys_refresh_s: float = Field(
        300.0,
        gt=0,
        validation_alias=_fixed("EDGE_PUBLIC_KEYS_REFRESH_S"),
        description="re-read setup's public keys this often (and on an unknown key id)",
    )
    credential_file: str | None = Field(
        None,
        validation_alias=_fixed("EDGE_CREDENTIAL_FILE"),
        description="file holding this service's own credential (issued by setup); "
        "EDGE_<SERVICE>_TOKEN gives it inline",
    )
    legacy_credentials_until: datetime.date | None = Field(
        None,
        validation_alias=_fixed("EDGE_LEGACY_CREDENTIALS_UNTIL"),
        description="migration window (YYYY-MM-DD, UTC, inclusive): until then HMAC edge tokens "
        "(EDGE_EDGE_TOKEN_SECRET) and HMAC service credentials (from EDGE_SERVICE_TOKEN) are "
        "still accepted; unset or past: refused",
    )
    service_token: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_SERVICE_TOKEN"),
        description="legacy: root of the HMAC service credentials (migration window only) and "
        "the shared token (EDGE_ACCEPT_SERVICE_TOKEN)",
    )
    edge_token_secret: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_EDGE_TOKEN_SECRET"),
        description="legacy: verifies HMAC edge tokens during the migration window",
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
    console_token: SecretStr | None = Field(
        None,
        validation_alias=_fixed("EDGE_CONSOLE_TOKEN"),
        description="the console's own credential",
    )
    accept_service_token: bool | None = Field(
        None,
        validation_alias=_fixed("EDGE_ACCEPT_SERVICE_TOKEN"),
        description="EDGE_SERVICE_TOKEN itself is a (scoped) credential; default: in local mode "
        "(development; a service holding it holds every service's grants)",
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
    tls_cert_file: str | None = Field(
        None,
        validation_alias=_fixed("EDGE_TLS_CERT_FILE"),
        description="serve HTTPS with this certificate chain (PEM; `edgectl tls cert`); unset: "
        "plain HTTP, for loopback development or behind a TLS-terminating proxy only",
    )
    tls_key_file: str | None = Field(
        None,
        validation_alias=_fixed("EDGE_TLS_KEY_FILE"),
        description="... and this private key (PEM)",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        validation_alias=_fixed("EDGE_FORWARDED_ALLOW_IPS"),
        description="addresses whose X-Forwarded-Proto/For are believed (a TLS proxy in front: "
        "then the console's cookie is Secure); comma list or *",
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
        if not self.checks_operator_token:
            if self.operator_token is not None:
                log.warning(
                    "the %s holds no operator token: EDGE_OPERATOR_TOKEN is ignored (remove it "
                    "from its configuration)",
                    self.service_name,
                )
            self.operator_token = None
            self.operator_token_sha256 = None
        if self.env == "local":
            if (
                self.checks_operator_token
                and self.operator_token is None
                and self.operator_token_sha256 is None
            ):
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
                if value is not None and len(value.get_secret_value()) < 16
            ]
            if (
                self.checks_operator_token
                and self.operator_token is None
                and self.operator_token_sha256 is None
            ):
                missing.append("EDGE_OPERATOR_TOKEN or EDGE_OPERATOR_TOKEN_SHA256")
            if missing:
                raise ValueError(
                    "outside local mode (EDGE_ENV=local) these "
                    "secrets must be set, 16 characters or more: " + ", ".join(missing)
                )
        if self.operator_token_sha256 is not None:
            digest = self.operator_token_sha256.strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("EDGE_OPERATOR_TOKEN_SHA256 must be 64 hex digits (a SHA-256)")
            self.operator_token_sha256 = digest
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE go together")
        if self.public_keys:
            from shared.signing import parse_public_keys

            parse_public_keys(self.public_keys)  # a bad key is an error at start, not at use
        if not self.port:
            self.port = self.default_port
        return self

    @property
    def accepts_service_token(self) -> bool:
        if self.accept_service_token is None:
            return self.env == "local"
        return self.accept_service_token

    def legacy_open(self, today: datetime.date | None = None) -> bool:
        """Whether the migration window of HMAC credentials is open (see the setting)."""
        if self.legacy_credentials_until is None:
            return False
        day = today or datetime.datetime.now(datetime.UTC).date()
        return day <= self.legacy_credentials_until

    def operator_digest(self) -> str | None:
        """The SHA-256 of the operator's token this service accepts."""
        if self.operator_token_sha256 is not None:
            return self.operator_token_sha256
        if self.operator_token is not None:
            return hashlib.sha256(self.operator_token.get_secret_value().encode()).hexdigest()
        return None

    def local_signer(self) -> Signer | None:
        """Local mode only: the fixed development key (see LOCAL_SIGNING_SEED)."""
        if self.env != "local":
            return None
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from shared.signing import Signer

        return Signer(Ed25519PrivateKey.from_private_bytes(LOCAL_SIGNING_SEED))

    def signer(self) -> Signer | None:
        """The key this process signs credentials with: setup's (SetupSettings), or local mode's
        development key; every other service: none."""
        return self.local_signer()

    def key_ring(self) -> KeyRing:
        """The keys this process verifies credentials with (before any fetched from setup)."""
        from shared.signing import KeyRing, parse_public_keys

        static = parse_public_keys(self.public_keys)
        local = self.local_signer()
        if local is not None:
            static.append(local.public)
        return KeyRing(static=static, signer=self.signer())

    def legacy_service_credentials(self) -> dict[str, str]:
        """Legacy: each service's HMAC credential derived from EDGE_SERVICE_TOKEN (accepted
        during the migration window only)."""
        out: dict[str, str] = {}
        if self.service_token is None:
            return out
        root = self.service_token.get_secret_value().encode()
        for name in LEGACY_SERVICE_NAMES:
            digest = hmac.new(root, f"service:{name}".encode(), hashlib.sha256).hexdigest()
            out[name] = "svc_" + digest[:40]
        return out

    def service_credentials(self) -> dict[str, str]:
        """The credentials this process was given (EDGE_<NAME>_TOKEN; its own also from
        EDGE_CREDENTIAL_FILE), and during the migration window the legacy derived ones of the
        services it was not given one for."""
        out: dict[str, str] = {}
        for name in SERVICE_NAMES:
            explicit = getattr(self, f"{name}_token")
            if explicit is not None:
                out[name] = explicit.get_secret_value()
        if self.service_name in SERVICE_NAMES and self.credential_file:
            out[self.service_name] = Path(self.credential_file).read_text().strip()
        if self.legacy_open():
            for name, credential in self.legacy_service_credentials().items():
                out.setdefault(name, credential)
        return out

    def agent_key_for(self, nid: str) -> str:
        """The key the master presents to the agent of node ``nid`` (shared.agent_keys)."""
        from shared.agent_keys import agent_key, derived_secret

        if self.agent_key_secret is not None:
            secret = self.agent_key_secret.get_secret_value()
        elif self.service_token is not None:
            secret = derived_secret(self.service_token.get_secret_value())
        else:  # never a key anyone could derive from nothing
            raise ValueError("the agents' keys need EDGE_AGENT_KEY_SECRET (or EDGE_SERVICE_TOKEN)")
        return agent_key(secret, nid)

    def own_credential(self) -> str:
        """What this service sends when it calls another one: the credential setup issued it
        (EDGE_<NAME>_TOKEN or EDGE_CREDENTIAL_FILE); in local mode one signed with the
        development key; during the migration window the legacy derived one."""
        own = self.service_credentials().get(self.service_name)
        if own:
            return own
        signer = self.signer()
        if signer is not None and self.service_name in SERVICE_NAMES:
            if self._own_signed is None:
                from shared.credentials import issue_service_credential

                self._own_signed = issue_service_credential(self.service_name, signer)
            return self._own_signed
        return ""

    _own_signed: str | None = PrivateAttr(None)

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
