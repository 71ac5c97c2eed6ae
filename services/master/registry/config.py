"""How the master reaches its private registry. The master service maps its settings
(``MASTER_REGISTRY_*``) onto this object; nothing here reads the environment."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class RegistryConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str = Field(
        description="registry address: https://host:port, http://host:port, or host:port "
        "(https unless insecure)"
    )
    username: str | None = None
    password: SecretStr | None = None
    insecure: bool = Field(
        False, description="plain HTTP (a LAN registry without TLS); used when url has no scheme"
    )
    tls_verify: bool = Field(True, description="verify the registry's TLS certificate")
    ca_file: str | None = Field(
        None, description="CA bundle that signed the registry's certificate"
    )
    timeout_s: float = Field(120.0, gt=0)
    chunk_size: int = Field(
        16 * 1024 * 1024, gt=0, description="blobs larger than this are uploaded in PATCH chunks"
    )
    token_realm_hosts: tuple[str, ...] = Field(
        (),
        description="host names (or host:port), besides the registry's own host, trusted to "
        "receive the credentials when a Bearer challenge sends us to a token realm over plain HTTP",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v:
            raise ValueError("the registry url must not be empty")
        return v

    @property
    def base_url(self) -> str:
        if "://" in self.url:
            return self.url
        return f"{'http' if self.insecure else 'https'}://{self.url}"

    @property
    def host(self) -> str:
        """``host[:port]`` as it appears in image names
        (``{host}/{filename}-{ai_class}:{version}``)."""
        return urlsplit(self.base_url).netloc

    def verify(self) -> bool | str:
        if self.ca_file:
            return self.ca_file
        return self.tls_verify

    def has_credentials(self) -> bool:
        return bool(self.username) and self.password is not None
