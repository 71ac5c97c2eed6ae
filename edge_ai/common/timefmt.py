"""Timestamps as the VMS reads them: UTC, milliseconds, a trailing Z."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_stamp(when: datetime) -> str:
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
