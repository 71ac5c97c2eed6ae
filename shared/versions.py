"""AI package versions: dotted numbers compared as numbers ("01" < "02" < "10", "1.9" < "1.10")."""

from __future__ import annotations

import re

from shared.errors import Invalid

# fullmatch with ASCII digits: ``$`` would accept a trailing newline and ``\d`` any Unicode digit.
_VERSION = re.compile(r"[0-9]{1,8}(\.[0-9]{1,8}){0,3}")


def validate_version(value: str, field: str = "version") -> str:
    value = str(value).strip()
    if not _VERSION.fullmatch(value):
        raise Invalid(
            f"{value!r} is not a version: use dotted numbers such as 01, 2 or 1.4.10", field=field
        )
    return value


def version_key(value: str) -> str:
    """A string that sorts like the version (used as a column for ORDER BY and uniqueness)."""
    parts = [int(p) for p in validate_version(value).split(".")]
    parts += [0] * (4 - len(parts))
    return ".".join(f"{p:08d}" for p in parts)
