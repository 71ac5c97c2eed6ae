from __future__ import annotations

from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.setup.secret_box import LOCAL_SECRET_KEY, SecretBox, parse_keys
from shared.deps import from_app_state
from shared.settings import ServiceSettings
from shared.signing import KeyRing, Signer, load_private_file


class SetupSettings(ServiceSettings):
    """Setup's settings; its own are read with the SETUP_ prefix (e.g. SETUP_PORT)."""

    model_config = SettingsConfigDict(env_prefix="SETUP_", extra="ignore", populate_by_name=True)

    service_name: str = "setup"
    default_port: ClassVar[int] = 8001
    notify_master: bool = Field(
        True, description="ask the master to act on changes at once (off: record only)"
    )
    master_silent_after_s: float = Field(
        45.0,
        gt=0,
        description="a registered master not heard from for this long is silent: its clusters' "
        "edges are marked master_silent in the fleet snapshot (the optimizer leaves them be) and "
        "another master may take its clusters over",
    )
    max_bulk_body_bytes: int = Field(
        64 * 1024 * 1024, description="body limit of POST /deployments/bulk"
    )
    device_credential_max_days: int = Field(
        365,
        ge=1,
        le=3650,
        description="longest lifetime of a device credential (edgectl edges credential EDGE "
        "--days N) for a device without an agent to renew its token",
    )
    secret_keys: SecretStr | None = Field(
        None,
        description="Fernet keys that encrypt camera credentials "
        "at rest, comma-separated, newest first "
        "(the newest encrypts, any decrypts); required outside local mode",
    )

    signing_key_files: str | None = Field(
        None,
        description="Ed25519 private keys (PEM files, comma-separated): the first signs every new "
        "edge token and credential, every one listed verifies (rotation: put the new key first, "
        "drop the old one later); required outside local mode (`edgectl credentials keygen`)",
    )

    @model_validator(mode="after")
    def _signing_key_required_outside_local(self) -> SetupSettings:
        if not self._key_paths() and self.env != "local":
            raise ValueError(
                "outside local mode (EDGE_ENV=local) SETUP_SIGNING_KEY_FILES must be set "
                "(edgectl credentials keygen --out FILE)"
            )
        for path in self._key_paths():
            load_private_file(path)  # unreadable or not Ed25519: an error at start
        return self

    def _key_paths(self) -> list[str]:
        return [p.strip() for p in (self.signing_key_files or "").split(",") if p.strip()]

    def signer(self) -> Signer | None:
        if self._signer is None:
            paths = self._key_paths()
            self._signer = Signer.from_file(paths[0]) if paths else self.local_signer()
        return self._signer

    _signer: Signer | None = PrivateAttr(None)

    def key_ring(self) -> KeyRing:
        """Setup verifies with its own keys only (EDGE_PUBLIC_KEYS is for the others)."""
        signer = self.signer()
        static = [load_private_file(p).public_key() for p in self._key_paths()[1:]]
        return KeyRing(static=static, signer=signer)

    @property
    def revocation_keep_s(self) -> int:
        """How long a revocation must be kept: as long as the longest-lived token it kills."""
        return max(self.edge_token_ttl_s, self.device_credential_max_days * 86400)

    @model_validator(mode="after")
    def _secret_keys_required_outside_local(self) -> SetupSettings:
        if self.secret_keys is None and self.env == "local":
            self.secret_keys = SecretStr(LOCAL_SECRET_KEY)
        if self.secret_keys is None:
            raise ValueError(
                "outside local mode (EDGE_ENV=local) SETUP_SECRET_KEYS must be set (Fernet keys)"
            )
        parse_keys(self.secret_keys.get_secret_value())
        return self

    def secret_box(self) -> SecretBox:
        """The box that encrypts camera credentials with these keys (``secret_keys``, set by the
        validation above)."""
        if self.secret_keys is None:
            raise ValueError("SETUP_SECRET_KEYS must be set (Fernet keys)")
        return SecretBox(parse_keys(self.secret_keys.get_secret_value()))

    def secret_values(self) -> list[str]:
        keys = parse_keys(self.secret_keys.get_secret_value()) if self.secret_keys else []
        return super().secret_values() + keys


SettingsDep = Annotated[SetupSettings, Depends(from_app_state("settings", SetupSettings))]
