"""Command-line options shared by the programs, each with an environment variable as its default.

The programs declare their settings as subclasses of :class:`ProgramSettings` and read them with
``edge_common.settings.load_settings`` (flag > environment > edgeconfig > default).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_ai.common.config import ConfigError
from edge_common.settings import setting


@dataclass
class ProgramSettings:
    """The settings every program has."""

    config: str | None = setting(
        None, help="edgeconfig.xml (default: $EDGE_CONFIG, else ./edgeconfig.xml)"
    )
    api_port: int | None = setting(
        None, kind=int, help="port of the local API (default: $EDGE_API_PORT, else none)"
    )
    interval: float = setting(1.0, env="EDGE_POST_INTERVAL", help="seconds between two posts")


def parse_codes(text: str) -> dict[str, str]:
    """``SUNNY=0,CLOUDY=1`` -> {"SUNNY": "0", "CLOUDY": "1"}."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        name, sep, code = part.partition("=")
        if not sep or not name.strip() or not code.strip():
            raise ConfigError(
                f"codes: expected CONDITION=CODE pairs separated by commas, got {part!r}"
            )
        mapping[name.strip().upper()] = code.strip()
    return mapping
