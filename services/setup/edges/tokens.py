"""Edge tokens in setup: issue (with an id from a sequence), renew, revoke, and the revocation list.

A revocation is ``(nid, min_token_id)``: every token of that node with a lower id is dead. It is
written in the request's transaction together with a NOTIFY, so every service applies it as soon
as the change is committed (shared.revocations), and never before.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.settings import SetupSettings
from shared.edge_tokens import issue_edge_token
from shared.revocations import CHANNEL, Loader

_NEXT_ID = text("SELECT nextval('setup.edge_token_ids')")
_REVOKE = text(
    "INSERT INTO setup.edge_token_revocations (nid, min_token_id, revoked_at) "
    "VALUES (:nid, :min, now()) ON CONFLICT (nid) DO UPDATE SET min_token_id = "
    "GREATEST(edge_token_revocations.min_token_id, EXCLUDED.min_token_id), revoked_at = now()"
)
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_LIST = text("SELECT nid, min_token_id FROM setup.edge_token_revocations")
_PRUNE = text(
    "DELETE FROM setup.edge_token_revocations "
    "WHERE revoked_at < now() - make_interval(secs => :ttl)"
)


async def next_token_id(session: AsyncSession) -> int:
    return int((await session.execute(_NEXT_ID)).scalar_one())


async def issue(
    session: AsyncSession, nid: str, settings: SetupSettings, *, ttl_s: int | None = None
) -> tuple[str, int]:
    """A new token for the node (older ones stay valid until revoked or expired): (token, id).
    ``ttl_s``: its lifetime, the edge tokens' (EDGE_EDGE_TOKEN_TTL_S) unless given."""
    signer = settings.signer()
    assert signer is not None  # setup always has one (SetupSettings)
    # Revocations older than the longest token lifetime (a device credential's) only concern
    # expired tokens: dropped here, on a write, so the services' read of the list stays a read.
    await session.execute(_PRUNE, {"ttl": settings.revocation_keep_s + 60})
    token_id = await next_token_id(session)
    token = issue_edge_token(
        nid,
        signer,
        token_id=token_id,
        ttl_s=settings.edge_token_ttl_s if ttl_s is None else ttl_s,
    )
    return token, token_id


async def revoke_below(session: AsyncSession, nid: str, min_token_id: int) -> None:
    """Every token of the node with an id below ``min_token_id`` dies when this commits."""
    await session.execute(_REVOKE, {"nid": nid, "min": min_token_id})
    payload = json.dumps({"nid": nid, "min_token_id": min_token_id})
    await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


async def rotate(session: AsyncSession, nid: str, settings: SetupSettings) -> str:
    """A new token; every older one of the node is revoked."""
    token, token_id = await issue(session, nid, settings)
    await revoke_below(session, nid, token_id)
    return token


async def revoke_all(session: AsyncSession, nid: str) -> None:
    await revoke_below(session, nid, await next_token_id(session))


async def revocations(session: AsyncSession) -> dict[str, int]:
    return {row.nid: int(row.min_token_id) for row in (await session.execute(_LIST)).all()}


def own_table_loader(app: FastAPI) -> Loader:
    """Setup's watcher reads its own table (the others ask setup over HTTP)."""

    async def load() -> dict[str, int]:
        async with app.state.sessionmaker() as session:
            entries = await revocations(session)
            await session.commit()
            return entries

    return load
