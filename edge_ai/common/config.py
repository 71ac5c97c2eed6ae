"""The edge program's configuration: the field's ``edgeconfig.xml``, then environment variables.

The field's file only has ``<vms><IP/><Port/><Path/></vms>``; the optional elements below were
added for this platform and old files need not have them::

    <Configuration>
        <vms><IP>127.0.0.1</IP><Port>6432</Port><Path>usage</Path></vms>
        <node><NID>0x01</NID><Name>edge-01</Name><Token>edg_...</Token></node>
        <analysis><URL>http://127.0.0.1:6432/analysis</URL><RouteLowConfidence>false</RouteLowConfidence></analysis>
        <buffer><Path>/var/lib/edge_ai</Path><MaxRecords>10000</MaxRecords></buffer>
    </Configuration>

``Path`` is read and kept (the field named the one route its program used), but the client picks
the route per record kind itself, from IP and Port.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edge_common.settings import SettingsError, secret_env_values

DEFAULT_CONFIG_FILE = "edgeconfig.xml"
DEFAULT_BUFFER_MAX_RECORDS = 10_000


# The configuration cannot be used; the message names the file, flag or variable and the problem.
# One class for the edgeconfig reader and the settings loader (edge_common.settings).
ConfigError = SettingsError


@dataclass(frozen=True)
class EdgeConfig:
    vms_url: str
    vms_path: str | None = None
    node_id: str | None = None
    node_name: str | None = None
    token: str | None = field(default=None, repr=False)
    analysis_url: str | None = None
    route_low_confidence: bool = False
    buffer_dir: Path = Path(".edge-buffer")
    buffer_max_records: int = DEFAULT_BUFFER_MAX_RECORDS
    http_timeout: float = 5.0
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    batch_size: int = 200
    api_host: str = "127.0.0.1"
    api_port: int | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    source: str = "environment"

    def require_node_id(self) -> str:
        if not self.node_id:
            raise ConfigError(
                f"{self.source}: no node id: add <node><NID>0x01</NID></node> "
                "to the file or set EDGE_NODE_ID"
            )
        return self.node_id


def _child(parent: ET.Element | None, name: str) -> ET.Element | None:
    """Child element by tag, case-insensitively (the field's files are hand-written)."""
    if parent is None:
        return None
    for child in parent:
        if isinstance(child.tag, str) and child.tag.lower() == name.lower():
            return child
    return None


def _text(parent: ET.Element | None, name: str) -> str | None:
    el = _child(parent, name)
    if el is None or el.text is None:
        return None
    value = el.text.strip()
    return value or None


def _parse_bool(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _parse_int(value: str, where: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{where}: must be {bound}, got {number}")
    return number


def _parse_float(value: str, where: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{where}: must be positive, got {number}")
    return number


def _check_url(url: str, where: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: expected an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def _split_vms_url(value: str) -> tuple[str, str, int | None]:
    """The field's VMS_URL: ``vms.lan``, ``vms.lan:6432`` or ``http(s)://host[:port][/]``."""
    parts = urlsplit(value if "://" in value else f"http://{value}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"VMS_URL: invalid port in {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"VMS_URL: expected a host or an http(s):// URL, got {value!r}")
    return parts.scheme, parts.hostname, port


def _read_file(path: Path) -> dict[str, object]:
    where = str(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except ET.ParseError as exc:
        raise ConfigError(f"{where}: malformed XML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if root.tag.lower() != "configuration":
        raise ConfigError(f"{where}: root element must be <Configuration>, found <{root.tag}>")
    vms = _child(root, "vms")
    if vms is None:
        raise ConfigError(f"{where}: missing <vms> element")
    values: dict[str, object] = {}
    ip = _text(vms, "IP")
    port = _text(vms, "Port")
    if ip is None:
        raise ConfigError(f"{where}: missing <vms><IP>")
    if port is None:
        raise ConfigError(f"{where}: missing <vms><Port>")
    values["vms_ip"] = ip
    values["vms_port"] = _parse_int(port, f"{where}: <vms><Port>", minimum=1, maximum=65535)
    values["vms_path"] = _text(vms, "Path")
    node = _child(root, "node")
    values["node_id"] = _text(node, "NID")
    values["node_name"] = _text(node, "Name")
    values["token"] = _text(node, "Token")
    analysis = _child(root, "analysis")
    if (url := _text(analysis, "URL")) is not None:
        values["analysis_url"] = _check_url(url, f"{where}: <analysis><URL>")
    if (route := _text(analysis, "RouteLowConfidence")) is not None:
        values["route_low_confidence"] = _parse_bool(
            route, f"{where}: <analysis><RouteLowConfidence>"
        )
    buffer = _child(root, "buffer")
    if (bpath := _text(buffer, "Path")) is not None:
        values["buffer_dir"] = Path(bpath)
    if (bmax := _text(buffer, "MaxRecords")) is not None:
        values["buffer_max_records"] = _parse_int(bmax, f"{where}: <buffer><MaxRecords>", minimum=1)
    return values


def _secret_file_value(env: Mapping[str, str], name: str) -> str | None:
    """``name``'s line in the ``KEY=VALUE`` file named by ``EDGE_SECRET_ENV_FILE`` (how the Docker
    runtime hands a container its secrets), if any."""
    value = secret_env_values(env).get(name, "").strip()
    return value or None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> EdgeConfig:
    """Read ``edgeconfig.xml`` (``path``, else $EDGE_CONFIG, else ./edgeconfig.xml), then the
    environment.

    The file may be left out only when no path was asked for, ./edgeconfig.xml does not exist and
    EDGE_VMS_URL gives the VMS: a program started by hand with environment variables only.
    """
    env = os.environ if env is None else env
    explicit = path if path is not None else env.get("EDGE_CONFIG")
    file_path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    env_only = env.get("EDGE_VMS_URL") or env.get("VMS_URL")
    if explicit is None and not file_path.exists() and env_only:
        values: dict[str, object] = {}
        source = "environment"
    else:
        values = _read_file(file_path)
        source = str(file_path)

    def var(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if value is not None and value.strip() else None

    scheme = "http"
    # The field's ConfigMap ("Opt.Config") names: VMS_URL (a host or a URL) and VMS_PORT.
    field_port = var("VMS_PORT")
    if field_port is not None:
        values["vms_port"] = _parse_int(field_port, "VMS_PORT", minimum=1, maximum=65535)
    if (v := var("VMS_URL")) is not None:
        scheme, host, port = _split_vms_url(v)
        values["vms_ip"] = host
        if field_port is None and port is not None:
            values["vms_port"] = port
        if "vms_port" not in values and var("EDGE_VMS_URL") is None:
            raise ConfigError(f"VMS_URL: {v!r} has no port: set VMS_PORT too")
    if (v := var("EDGE_VMS_IP")) is not None:
        values["vms_ip"] = v
    if (v := var("EDGE_VMS_PORT")) is not None:
        values["vms_port"] = _parse_int(v, "EDGE_VMS_PORT", minimum=1, maximum=65535)
    if (v := var("EDGE_VMS_URL")) is not None:
        vms_url = _check_url(v, "EDGE_VMS_URL")
    else:
        # IPv6 literals need brackets in a URL.
        ip = str(values["vms_ip"])
        host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
        vms_url = f"{scheme}://{host}:{values['vms_port']}"
    for name, key in (
        ("EDGE_NODE_ID", "node_id"),
        ("EDGE_NODE_NAME", "node_name"),
        ("EDGE_TOKEN", "token"),
    ):
        if (v := var(name)) is not None:
            values[key] = v
    if var("EDGE_TOKEN") is None and (v := _secret_file_value(env, "EDGE_TOKEN")) is not None:
        # The Docker runtime hands the token over in the secret env file, not in the spec.
        values["token"] = v
    if (v := var("EDGE_ANALYSIS_URL")) is not None:
        values["analysis_url"] = _check_url(v, "EDGE_ANALYSIS_URL")
    if (v := var("EDGE_ROUTE_LOW_CONFIDENCE")) is not None:
        values["route_low_confidence"] = _parse_bool(v, "EDGE_ROUTE_LOW_CONFIDENCE")
    if (v := var("EDGE_BUFFER_DIR")) is not None:
        values["buffer_dir"] = Path(v)
    if (v := var("EDGE_BUFFER_MAX_RECORDS")) is not None:
        values["buffer_max_records"] = _parse_int(v, "EDGE_BUFFER_MAX_RECORDS", minimum=1)
    for name, key in (
        ("EDGE_HTTP_TIMEOUT", "http_timeout"),
        ("EDGE_BACKOFF_MIN", "backoff_min"),
        ("EDGE_BACKOFF_MAX", "backoff_max"),
    ):
        if (v := var(name)) is not None:
            values[key] = _parse_float(v, name)
    if (v := var("EDGE_BATCH_SIZE")) is not None:
        values["batch_size"] = _parse_int(v, "EDGE_BATCH_SIZE", minimum=1, maximum=10_000)
    if (v := var("EDGE_API_HOST")) is not None:
        values["api_host"] = v
    if (v := var("EDGE_API_PORT")) is not None:
        values["api_port"] = _parse_int(v, "EDGE_API_PORT", minimum=0, maximum=65535)
    if (v := var("EDGE_LOG_FORMAT")) is not None:
        if v not in {"text", "json"}:
            raise ConfigError(f"EDGE_LOG_FORMAT: expected text or json, got {v!r}")
        values["log_format"] = v
    if (v := var("EDGE_LOG_LEVEL")) is not None:
        values["log_level"] = v.upper()

    values.pop("vms_ip", None)
    values.pop("vms_port", None)
    config = EdgeConfig(vms_url=vms_url, source=source, **values)  # type: ignore[arg-type]
    if config.backoff_min > config.backoff_max:
        raise ConfigError("EDGE_BACKOFF_MIN must not exceed EDGE_BACKOFF_MAX")
    return config
