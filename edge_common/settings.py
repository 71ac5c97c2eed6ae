"""One way for an edge program to read its settings: flags, environment, ``edgeconfig.xml``.

A program declares its settings once, as a dataclass whose fields are made by :func:`setting`::

    @dataclass
    class WeatherSettings:
        period: float = setting(30.0, env="WEATHER_PERIOD", help="schedule: seconds per code")

:func:`load_settings` builds the ``argparse`` parser from the declaration (the flag is the field's
name with dashes, ``--period``, unless ``flag=`` names it), then takes each value from the first
of: the flag, the environment (the names in ``env``, in order; an empty value counts as unset;
then the ``KEY=VALUE`` file named by ``$EDGE_SECRET_ENV_FILE``, how the Docker runtime hands
secrets over), the edgeconfig values (``edgeconfig=`` key, e.g. ``node/Name``), the default.
Values are converted to the field's type (``str``, ``int``, ``float``, ``bool``; the default's
type, else ``kind=``); a bad one raises :class:`SettingsError` with one line naming where it came
from (``--period`` or ``WEATHER_PERIOD``).

Standard library only and Python 3.8: it runs on the edges.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeVar

SECRET_ENV_FILE = "EDGE_SECRET_ENV_FILE"
_META = "edge_setting"

T = TypeVar("T")


class SettingsError(Exception):
    """A setting has a bad value; the message names the flag, variable or file and the problem."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """How one field is read (kept in the field's metadata)."""

    env: tuple[str, ...] = ()
    edgeconfig: str | None = None
    help: str = ""
    flag: str | None = None
    kind: type | None = None
    choices: tuple[str, ...] | None = None


def setting(
    default: Any,
    *,
    env: Any = (),
    edgeconfig: str | None = None,
    help: str = "",
    flag: str | None = None,
    kind: type | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A settings field: its default, environment variable(s), edgeconfig key, help, flag."""
    names = (env,) if isinstance(env, str) else tuple(env)
    meta = Setting(
        env=names,
        edgeconfig=edgeconfig,
        help=help,
        flag=flag,
        kind=kind,
        choices=tuple(choices) if choices is not None else None,
    )
    return dataclasses.field(default=default, metadata={_META: meta})


class _Parser(argparse.ArgumentParser):
    """Bad flags are settings errors too (the program exits 2 with the problem named)."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(message)


def _fields(cls: type) -> list[tuple[dataclasses.Field[Any], Setting]]:
    return [(f, f.metadata[_META]) for f in dataclasses.fields(cls) if _META in f.metadata]


def _flag(f: dataclasses.Field[Any], meta: Setting) -> str:
    return meta.flag or "--" + f.name.replace("_", "-")


def _kind(f: dataclasses.Field[Any], meta: Setting) -> type:
    if meta.kind is not None:
        return meta.kind
    return str if f.default is None else type(f.default)


def _help(f: dataclasses.Field[Any], meta: Setting) -> str:
    where = [f"${name}" for name in meta.env]
    if meta.edgeconfig:
        where.append(f"edgeconfig {meta.edgeconfig}")
    if f.default is not None and f.default != "":
        where.append(f"default {f.default}")
    suffix = f" ({', '.join(where)})" if where else ""
    return f"{meta.help}{suffix}"


def convert(value: str, kind: type, where: str) -> Any:
    """``value`` as ``kind``; :class:`SettingsError` naming ``where`` if it is not one."""
    text = value.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{where}: expected an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"{where}: expected a number, got {value!r}") from None
    return value


def secret_env_values(env: Mapping[str, str]) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``$EDGE_SECRET_ENV_FILE`` (``docker --env-file`` format)."""
    path = env.get(SECRET_ENV_FILE)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise SettingsError(f"{SECRET_ENV_FILE} {path}: unreadable ({exc.strerror})") from exc
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            out[key.strip()] = value
    return out


def edgeconfig_values(path: str) -> dict[str, str]:
    """``section/Element`` -> text of an ``edgeconfig.xml`` (``vms/IP``, ``node/Name``...);
    {} when the file does not exist (the program then runs on flags and environment)."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        return {}
    except (ET.ParseError, OSError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    out: dict[str, str] = {}
    for section in root:
        for element in section:
            if isinstance(element.tag, str) and element.text and element.text.strip():
                out[f"{section.tag}/{element.tag}"] = element.text.strip()
    return out


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """The ``argparse`` parser of a settings class: one flag a field, no defaults (unset flags
    stay None so the environment and the file can be told apart)."""
    parser = _Parser(prog=prog, description=description)
    for f, meta in _fields(cls):
        parser.add_argument(
            _flag(f, meta),
            dest=f.name,
            default=None,
            choices=meta.choices,
            help=_help(f, meta),
        )
    return parser


def load_settings(
    cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str = "",
    env: Mapping[str, str] | None = None,
    edgeconfig: Mapping[str, str] | None = None,
) -> T:
    """An instance of ``cls``: each field from its flag, else its environment variable(s), else
    its edgeconfig key, else its default (see the module's docstring)."""
    env = os.environ if env is None else env
    args = build_parser(cls, prog, description).parse_args(argv)
    secrets: dict[str, str] | None = None
    values: dict[str, Any] = {}
    for f, meta in _fields(cls):
        kind = _kind(f, meta)
        flag_value = getattr(args, f.name)
        if flag_value is not None:
            values[f.name] = convert(flag_value, kind, _flag(f, meta))
            continue
        found = None
        for name in meta.env:
            raw = env.get(name)
            if raw in (None, ""):
                if secrets is None:
                    secrets = secret_env_values(env)
                raw = secrets.get(name)
            if raw not in (None, ""):
                found = (raw, name)
                break
        if found is None and meta.edgeconfig and edgeconfig:
            raw = edgeconfig.get(meta.edgeconfig)
            if raw not in (None, ""):
                found = (raw, f"edgeconfig {meta.edgeconfig}")
        if found is None:
            continue
        raw, where = found
        if meta.choices is not None and raw not in meta.choices:
            raise SettingsError(f"{where}: expected one of {', '.join(meta.choices)}, got {raw!r}")
        values[f.name] = convert(str(raw), kind, where)
    return cls(**values)
