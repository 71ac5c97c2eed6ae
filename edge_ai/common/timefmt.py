"""Timestamps as the VMS reads them: UTC, milliseconds, a trailing Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_stamp(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
