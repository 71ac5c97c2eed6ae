from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.master import MasterHealth, MasterHeartbeat
from shared.contracts.registry import MasterOut

__all__ = [
    "MasterCreate",
    "MasterHealth",
    "MasterHeartbeat",
    "MasterOut",
    "MasterRegister",
    "MasterUpdate",
]


def _check_port(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(str(value).strip())
    except ValueError as exc:
        raise ValueError("port must be a number") from exc
    if not 1 <= port <= 65535:
        raise ValueError("port must be between 1 and 65535")
    return port


def _checked_url(url: str | None) -> str | None:
    """``url`` if it is http(s)://host[:port], the port a number in range."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be http(s)://host[:port]")
    return url


def _checked_ip(ip: str | None) -> str | None:
    """``ip`` if a URL can hold it as its host (an address or a name, no path or port)."""
    if ip is not None and ip != "":
        try:
            parts = urlsplit(f"http://{ip}:5000")
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"not a host address ({exc})") from None
        if not host or port != 5000 or parts.path or parts.query or parts.fragment:
            raise ValueError("not a host address: give the address alone, the port apart")
    return ip


def _address(url: str | None, ip: str | None, port: int | None) -> str:
    """The master's URL: ``url`` as given, or the field's ``ip`` and ``port`` (default 5000)."""
    if url:
        return url
    if ip:
        return f"http://{ip}:{port or 5000}"
    raise ValueError("give url, or ip and port")


class MasterCreate(BaseModel):
    """The field's payload ``{name, ip, port, description}`` or ``url`` instead of ip and port."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "master-lab",
                    "url": "http://127.0.0.1:8002",
                    "description": "the lab's master",
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100)
    url: str | None = Field(
        None, max_length=500, description="http(s)://host:port of the master's API"
    )
    ip: str | None = Field(None, max_length=255)
    port: int | None = Field(None, description="number or numeric string, as the field sends it")
    description: str = Field("", max_length=2000)
    cluster_id: int | None = None

    _port = field_validator("port", mode="before")(lambda cls, v: _check_port(v))
    _url = field_validator("url")(lambda cls, v: _checked_url(v))
    _ip = field_validator("ip")(lambda cls, v: _checked_ip(v))

    @model_validator(mode="after")
    def _needs_address(self) -> MasterCreate:
        self.url = _address(self.url, self.ip, self.port)
        return self


class MasterUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"description": "the lab's master, rack 2"}]},
    )
    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=2000)
    cluster_id: int | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _checked_url(v)


class MasterRegister(BaseModel):
    """A master registering itself (at start, and again whenever setup lost it): the field's
    ``{name, ip, port, description}`` (or ``url``), the names of the clusters it serves, and its
    health. Registering again under the same name updates the record."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "master-lab-site",
                    "url": "http://127.0.0.1:8002",
                    "description": "the lab's site master",
                    "clusters": ["lab"],
                    "health": {"state": "ok"},
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100)
    url: str | None = Field(None, max_length=500)
    ip: str | None = Field(None, max_length=255)
    port: int | None = None
    description: str = Field("", max_length=2000)
    clusters: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="names of the clusters this master serves; [] = every cluster no master "
        "serves (a single-site install)",
    )
    health: MasterHealth = Field(
        default_factory=MasterHealth, description="the master's own report"
    )

    _port = field_validator("port", mode="before")(lambda cls, v: _check_port(v))
    _url = field_validator("url")(lambda cls, v: _checked_url(v))
    _ip = field_validator("ip")(lambda cls, v: _checked_ip(v))

    @model_validator(mode="after")
    def _needs_address(self) -> MasterRegister:
        self.url = _address(self.url, self.ip, self.port)
        if len(set(self.clusters)) != len(self.clusters):
            raise ValueError("clusters: a cluster is named twice")
        return self
