"""VMS test helpers: an in-process VMS on the test database, edge tokens, the field's payloads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from services.vms.app import create_app
from shared.edge_tokens import issue_edge_token
from tests.conftest import running_app
from tests.helpers.env import SIGNER, free_port, settings_for


def edge_headers(nid: str) -> dict[str, str]:
    """What setup hands an edge when it registers: a token signed with the shared secret."""
    return {"Authorization": f"Bearer {issue_edge_token(nid, SIGNER)}"}


def nowhere() -> str:
    # A loopback port nothing listens on: "setup unreachable".
    return f"http://127.0.0.1:{free_port()}"


@contextlib.asynccontextmanager
async def vms(database_url: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    overrides.setdefault("setup_url", nowhere())
    overrides.setdefault("optimizer_url", nowhere())
    overrides.setdefault("group_commit_window_ms", 1.0)
    app = create_app(settings_for("vms", database_url, **overrides))
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def fetch(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


FIELD_ZONE = "Asia/Seoul"  # the field's devices run Korean time (VMS_FIELD_TIMEZONE's default)


def field_date_time(ts: datetime | None = None, zone: str = FIELD_ZONE) -> tuple[str, str]:
    """The field's date (yyyymmdd) and time (hhmmss) of ``ts``, on a clock set to ``zone``."""
    local = (ts or datetime.now(UTC)).astimezone(ZoneInfo(zone))
    return local.strftime("%Y%m%d"), local.strftime("%H%M%S")


@pytest.fixture
async def vms_flag(db: str) -> AsyncIterator[httpx.AsyncClient]:
    """A VMS that accepts unknown nodes (flagged) and anonymous legacy posts."""
    async with vms(db, unknown_nodes="flag", allow_anonymous=True) as client:
        yield client
