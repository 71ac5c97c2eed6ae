"""One line for what goes wrong before or outside a command's own checks: a bad setting, a
service that cannot be reached, anything unexpected. ``edgectl --debug`` (or EDGECTL_DEBUG=1)
shows the traceback instead."""

from __future__ import annotations

from typing import Any


def _settings_classes() -> list[type]:
    from pydantic_settings import BaseSettings

    found: list[type] = []
    todo: list[type] = [BaseSettings]
    while todo:
        cls = todo.pop()
        sub: type
        for sub in cls.__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def env_name(title: str, field: str) -> str:
    """The environment variable a settings class reads ``field`` from (its alias, else its env
    prefix + the field's name)."""
    for cls in _settings_classes():
        if cls.__name__ != title:
            continue
        info = getattr(cls, "model_fields", {}).get(field)
        alias = getattr(info, "validation_alias", None) if info is not None else None
        if isinstance(alias, str):
            return alias
        choices = getattr(alias, "choices", None)
        if choices and isinstance(choices[0], str):
            return choices[0]
        prefix = str(getattr(cls, "model_config", {}).get("env_prefix", ""))
        return f"{prefix}{field}".upper()
    return field


def _validation_line(exc: Any) -> str:
    parts = []
    named: set[str] = set()
    for error in exc.errors():
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else "?"
        name = env_name(exc.title, field) if exc.title.endswith("Settings") else field
        if name in named:
            continue  # one problem per setting is enough
        named.add(name)
        value = error.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        parts.append(f"{name}: {error.get('msg')}{shown}")
    what = "bad setting" if exc.title.endswith("Settings") else "invalid"
    return f"{what} " + "; ".join(parts)


def one_line(exc: BaseException) -> str:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, ValidationError):
        return _validation_line(exc)
    if isinstance(exc, SettingsError):
        # pydantic-settings could not decode a value (e.g. a list that is not JSON)
        cause = exc.__cause__
        text = str(exc).replace('error parsing value for field "', "bad setting ")
        return f"{text}: {cause}" if cause else text
    try:
        import httpx

        from edge_ai.common.http import CallFailed

        if isinstance(exc, CallFailed):
            return str(exc) if exc.status is not None else f"network error: {exc}"
        if isinstance(exc, httpx.HTTPError):
            return f"network error: {exc or type(exc).__name__}"
    except ImportError:
        pass
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
