"""Setup asks the master to act. Calls run after commit and never fail the request:
the master's periodic reconcile pass converges anyway if a call is lost."""
from __future__ import annotations

import logging

import httpx

from shared.clients import raise_for_upstream, service_client
from shared.errors import Invalid, Unavailable
from shared.db import after_commit
from shared.settings import ServiceSettings
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("setup.master")


async def _post(settings: ServiceSettings, path: str) -> None:
    try:
        async with service_client(settings, settings.master_url, timeout=5) as client:
            response = await client.post(path)
        if response.status_code >= 400:
            log.warning("master answered %s to %s", response.status_code, path)
    except httpx.HTTPError as exc:
        log.warning("master unreachable for %s (%s); its periodic pass will catch up", path, type(exc).__name__)


def request_reconcile(session: AsyncSession, settings) -> None:
    if settings.notify_master:
        after_commit(session, lambda: _post(settings, "/reconcile"))


def request_build(session: AsyncSession, settings, ai_id: int) -> None:
    if settings.notify_master:
        after_commit(session, lambda: _post(settings, f"/ai-packages/{ai_id}/build"))


def request_removal(session: AsyncSession, settings, ai_id: int) -> None:
    if settings.notify_master:
        after_commit(session, lambda: _post(settings, f"/ai-packages/{ai_id}/remove"))


async def check_package_folder(settings, filename: str, version: str, ai_class: str) -> None:
    """Ask the master, before a field upload is recorded, whether its package folder is there:
    Invalid naming ``filename`` when it is not (the field's route refuses at once), Unavailable
    when the master cannot answer (nothing is recorded; the device may send it again)."""
    try:
        async with service_client(settings, settings.master_url, timeout=5) as client:
            response = await client.get(
                f"/ai-packages/folders/{filename}",
                params={"version": version, "ai_class": ai_class},
            )
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"the master cannot be reached to find the package folder ({type(exc).__name__})",
            headers={"Retry-After": "2"},
        ) from None
    if response.status_code == 422:
        error = response.json().get("error", {})
        raise Invalid(error.get("message") or response.text, field=error.get("field") or "filename")
    raise_for_upstream(response, "the master")
