"""A cycle records its routes before its bulk write to setup (a fast helper must find its
hand-off); when setup refuses the write, the routes are put back exactly as they were."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.optimizer.engine import store
from services.optimizer.model.context import RouteState


async def test_refused_write_puts_the_routes_back(db: str) -> None:
    engine = create_async_engine(db)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        kept = RouteState("0x01", 1, "local", None, True, 0.2, 0.1, "d-old")
        async with sessions() as s, s.begin():
            await store.save_routes(s, [kept])
        before = {"0x01": kept}
        changed = [
            RouteState("0x01", 1, "edge", "0x02", True, 0.2, 0.1, "d-new"),
            RouteState("0x03", 3, "server", None, False, None, None, "d-new"),
        ]
        async with sessions() as s, s.begin():
            await store.save_routes(s, changed)
        async with sessions() as s:
            assert (await store.routes(s))["0x01"].helper_nid == "0x02"

        async with sessions() as s, s.begin():
            await store.restore_routes(s, changed, before)
        async with sessions() as s:
            now = await store.routes(s)
        assert set(now) == {"0x01"}, "a row the refused cycle created is gone"
        assert now["0x01"] == kept, "the row the refused cycle changed is back as it was"
    finally:
        await engine.dispose()
