"""The field's scripts send ``version`` and ``ai_class`` as JSON numbers at times ("01" as 1).

A number is read as the string the field means: an integer is written with two digits at least
(1 -> "01", 0 -> "00", 12 -> "12"), as the field writes versions and AI classes; a fraction as it
reads (1.5 -> "1.5"). Strings pass unchanged; booleans are left for the field's own validation.
"""

from __future__ import annotations

from typing import Any


def field_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return f"{value:02d}" if value >= 0 else str(value)
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):02d}" if value >= 0 else str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def field_texts(data: Any, *names: str) -> Any:
    """``data`` (a dict about to be validated) with the named number fields turned into text."""
    if not isinstance(data, dict):
        return data
    return {k: field_text(v) if k in names else v for k, v in data.items()}
