"""Command-line options shared by the programs, each with an environment variable as its default.

The programs declare their settings as subclasses of :class:`ProgramSettings` and read them with
``edge_common.settings.load_settings`` (flag > environment > edgeconfig > default).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import NoReturn, overload

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


class ArgumentParser(argparse.ArgumentParser):
    """Bad options are configuration errors too: exit code 2 with the problem named."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


@overload
def env_default(name: str, default: str) -> str: ...
@overload
def env_default(name: str, default: None = None) -> str | None: ...
def env_default(name: str, default: str | None = None) -> str | None:
    """``$name``, else its line in the secret env file (``$EDGE_SECRET_ENV_FILE``), else
    ``default``."""
    value = os.environ.get(name)
    if value in (None, ""):
        value = secret_env_file().get(name)
    return value if value not in (None, "") else default


def secret_env_file() -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``$EDGE_SECRET_ENV_FILE`` (``docker --env-file`` format): how
    the Docker runtime hands a program its secrets (the camera URL) without putting them in the
    container's spec."""
    path = os.environ.get("EDGE_SECRET_ENV_FILE")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"EDGE_SECRET_ENV_FILE {path}: unreadable ({exc.strerror})") from exc
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            out[key.strip()] = value
    return out


def base_parser(prog: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        default=None,
        help="edgeconfig.xml (default: $EDGE_CONFIG, else ./edgeconfig.xml)",
    )
    parser.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="port of the local API (default: $EDGE_API_PORT, else none)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=float(env_default("EDGE_POST_INTERVAL", "1")),
        help="seconds between two posts ($EDGE_POST_INTERVAL, default 1)",
    )
    return parser


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
