"""The console's settings; its own are read with the CONSOLE_ prefix (e.g. CONSOLE_SESSION_TTL_S).
The other services' URLs are the fixed EDGE_*_URL names every service reads."""

from __future__ import annotations

from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.deps import from_app_state
from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    """Sessions, the map, live updates and the calls to the other services."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore", populate_by_name=True)

    service_name: str = "console"
    default_port: ClassVar[int] = 8080
    # It holds no operator token (EDGE_OPERATOR_TOKEN is ignored): setup checks the one presented
    # at sign-in; the console's own credential is EDGE_CONSOLE_TOKEN (or EDGE_CREDENTIAL_FILE).
    checks_operator_token: ClassVar[bool] = False

    session_ttl_s: int = Field(
        12 * 3600,
        ge=60,
        le=30 * 86400,
        description="a sign-in lasts this long (then the page asks again); the session's "
        "operator credential from setup expires with it",
    )
    cookie_secure: bool = Field(
        False, description="send the session cookie only over https (set behind TLS)"
    )
    tile_url: str = Field(
        "",
        description="a LAN tile server for the fleet map, e.g. http://tiles.lan/{z}/{x}/{y}.png; "
        "empty: positions on a plain projection, no tiles",
    )
    live_interval_s: float = Field(
        2.0, gt=0, description="how often the live views (fleet, decisions) ask the services"
    )
    upstream_timeout_s: float = Field(
        10.0, gt=0, description="timeout of a call to another service"
    )
    analysis_timeout_s: float = Field(
        60.0, gt=0, description="timeout of an image analysis or video upload call"
    )
    max_body_bytes: int = Field(1_048_576, description="request body limit (413 above)")
    upload_max_bytes: int = Field(
        512 * 1024 * 1024,
        description="body limit of AI package and video uploads passed on (413 above)",
    )
    image_max_bytes: int = Field(
        16 * 1024 * 1024, description="body limit of an image sent for analysis (413 above)"
    )


SettingsDep = Annotated[ConsoleSettings, Depends(from_app_state("settings", ConsoleSettings))]
