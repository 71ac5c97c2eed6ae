"""Edges: the field's registration payload plus what the platform needs (nid, cluster, node,
capacity)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from services.setup.edges.rtsp import split_credentials
from shared.agent_urls import check_agent_url, parse_networks
from shared.contracts.fleet import EdgeStatus
from shared.contracts.registry import Capacity
from shared.input_checks import NID_PATTERN

ANY_NETWORK = parse_networks("0.0.0.0/0,::/0")


def _coordinate(value: Any, name: str, limit: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not -limit <= number <= limit or number != number:
        raise ValueError(f"{name} must be between -{limit:g} and {limit:g}")
    return number


class Gps(BaseModel):
    """Numbers, or numeric strings as the field sends them."""

    latitude: float
    longitude: float

    @field_validator("latitude", mode="before")
    @classmethod
    def _lat(cls, v):
        return _coordinate(v, "latitude", 90)

    @field_validator("longitude", mode="before")
    @classmethod
    def _lon(cls, v):
        return _coordinate(v, "longitude", 180)


def _yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text in ("YES", "Y", "TRUE", "1"):
        return True
    if text in ("NO", "N", "FALSE", "0"):
        return False
    raise ValueError('must be "YES" or "NO"')


def _agent_url(value: str | None) -> str | None:
    """http(s), no credentials, and never a link-local, multicast or unspecified address; the
    master applies the network policy (EDGE_AGENT_ALLOWED_NETWORKS) again before every call."""
    if value in (None, ""):
        return None
    check_agent_url(value, ANY_NETWORK)
    return value


def _camera_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    split_credentials(value)  # raises ValueError naming the problem
    return value


def _time_zone(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone (IANA name such as Asia/Seoul)") from None
    return value


class EdgeBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: int | None = Field(None, ge=0, le=999, description="device type code (the field uses 1)")
    gps: Gps | None = None
    address: str | None = Field(None, max_length=500)
    ip: str | None = Field(None, max_length=64)
    supports_analysis: bool | None = Field(
        None,
        validation_alias=AliasChoices("isSupportAnnalysis", "supports_analysis"),
        description='the field\'s isSupportAnnalysis: "YES" or "NO"',
    )
    url: str | None = Field(
        None, max_length=1000, description="camera URL (RTSP); credentials are kept secret"
    )
    description: str | None = Field(None, max_length=2000)
    cluster_id: int | None = None
    node_name: str | None = Field(None, max_length=253, description="Kubernetes node name")
    agent_url: str | None = Field(
        None,
        max_length=500,
        description="edge agent base URL (agent runtime): http(s)://host:port, no credentials",
    )
    capacity: Capacity | None = None
    time_zone: str | None = Field(
        None,
        max_length=64,
        description="IANA zone of the date/time the edge's programs send, e.g. Asia/Seoul; "
        "absent: the fleet default (VMS_FIELD_TIMEZONE)",
    )
    device_login: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$",
        description="the login name the edge's field devices report as `username` "
        "(e.g. edge-master-01-1129): records of a device without a token that names it are "
        "stored under this edge (where the VMS accepts such devices: VMS_ALLOW_ANONYMOUS)",
    )

    _yes_no = field_validator("supports_analysis", mode="before")(
        lambda cls, v: None if v is None else _yes_no(v)
    )
    _url = field_validator("url")(lambda cls, v: _camera_url(v))
    _tz = field_validator("time_zone")(lambda cls, v: _time_zone(v))
    _agent = field_validator("agent_url")(lambda cls, v: _agent_url(v))


class EdgeCreate(EdgeBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "gate-cam-3",
                    "nid": "0x31",
                    "address": "Gate 3",
                    "isSupportAnnalysis": "YES",
                    "time_zone": "Asia/Seoul",
                }
            ]
        }
    )
    name: str = Field(min_length=1, max_length=100)
    nid: str | None = Field(
        None,
        pattern=NID_PATTERN,
        description='node id the edge AIs report with, e.g. "0x01"; absent: the next free 0xNN',
    )
    type: int = Field(1, ge=0, le=999)


class EdgeUpdate(EdgeBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "description": "north gate camera",
                }
            ]
        }
    )
    name: str | None = Field(None, min_length=1, max_length=100)
    status: EdgeStatus | None = None


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"days": 365}]})
    days: int = Field(
        ge=1, le=3650, description="lifetime in days (at most SETUP_DEVICE_CREDENTIAL_MAX_DAYS)"
    )


class EdgeToken(BaseModel):
    id: int
    nid: str
    token: str = Field(description="shown only once; update the edge's edgeconfig.xml with it")
    expires_at: int | None = Field(
        None, description="unix time; the agent renews before (POST /edges/me/token)"
    )
