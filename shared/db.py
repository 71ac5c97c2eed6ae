"""Database: declarative base per service schema, engine in the lifespan, one session per request.

The session dependency commits once at the end of a request (or rolls back on error);
services and repositories only flush.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import DateTime, Dialect, MetaData, String, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from shared.errors import Conflict, Invalid, NotFound, Unavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base whose tables live in the given Postgres schema."""

    class Base(DeclarativeBase):
        metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
        type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}

    return Base


E = TypeVar("E", bound=StrEnum)


class StrEnumColumn(TypeDecorator[E]):
    """A state column typed by its StrEnum (edge_common.vocabulary's states): stored as plain
    VARCHAR, read back as the member; a value outside the enum is refused before it is written."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20):
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    application_name: str = "edge",
    pool_timeout: float = 3.0,
) -> AsyncEngine:
    """The service's engine. A request that finds every pooled connection busy waits at most
    ``pool_timeout`` seconds, then is answered 503 + Retry-After (``translate_db_error``)."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_UNIQUE_DETAIL = re.compile(r"Key \((?P<cols>[^)]*)\)=\((?P<vals>[^)]*)\) already exists")
_FK_DETAIL = re.compile(r"Key \((?P<cols>[^)]*)\)=\((?P<vals>[^)]*)\) is not present")


# Postgres refusing for load, not for the request's content: too many connections, out of
# resources, a statement or lock wait cancelled by its timeout, a server starting or stopping.
OVERLOAD_SQLSTATES = {"53000", "53100", "53200", "53300", "57014", "55P03", "57P01", "57P03"}
RETRY_AFTER = {"Retry-After": "1"}


def overloaded(exc: BaseException) -> Unavailable | None:
    """The 503 + Retry-After for an exhausted pool or an overloaded/unreachable database."""
    if isinstance(exc, PoolTimeout):
        return Unavailable(
            "every database connection of this process is busy, retry later", headers=RETRY_AFTER
        )
    orig = getattr(exc, "orig", exc)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    if sqlstate in OVERLOAD_SQLSTATES:
        return Unavailable("the database is overloaded, retry later", headers=RETRY_AFTER)
    return None


def translate_db_error(exc: Exception) -> Exception:
    """Turn a low-level database error into a domain error naming the field."""
    busy = overloaded(exc)
    if busy is not None:
        return busy
    orig = getattr(exc, "orig", None)
    detail = str(
        getattr(orig, "detail", "") or getattr(getattr(orig, "__cause__", None), "detail", "") or ""
    )
    if isinstance(exc, IntegrityError):
        sqlstate = getattr(orig, "sqlstate", None) or getattr(
            getattr(orig, "__cause__", None), "sqlstate", None
        )
        if m := _UNIQUE_DETAIL.search(detail):
            field = m["cols"].split(",")[-1].strip()
            return Conflict(f"{m['cols']} = {m['vals']} already exists", field=field)
        if m := _FK_DETAIL.search(detail):
            return NotFound(f"{m['cols']} = {m['vals']} does not exist", field=m["cols"])
        if sqlstate == "23505":
            return Conflict("a resource with these values already exists")
        return Invalid(f"the database refused the change: {detail or type(orig).__name__}")
    if isinstance(exc, (OperationalError, ConnectionError, OSError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return Unavailable("database unavailable, retry later", headers=RETRY_AFTER)
    return exc


_background: set[asyncio.Task] = set()


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[Any]]) -> None:
    """Run ``action`` (e.g. notify another service) once this request's transaction has
    committed."""
    session.info.setdefault("after_commit", []).append(action)


def _run_after_commit(session: AsyncSession) -> None:
    for action in session.info.pop("after_commit", []):
        task = asyncio.create_task(action())
        _background.add(task)
        task.add_done_callback(_background.discard)


async def session_dependency(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except (IntegrityError, OperationalError, PoolTimeout) as exc:
            await session.rollback()
            raise translate_db_error(exc) from exc
        except BaseException:
            session.info.pop("after_commit", None)
            await session.rollback()
            raise
        _run_after_commit(session)


# scope="function": commit before the response is sent, so a 2xx always means committed.
SessionDep = Annotated[AsyncSession, Depends(session_dependency, scope="function")]


async def flush(session: AsyncSession) -> None:
    """Flush and translate constraint violations into domain errors."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise translate_db_error(exc) from exc


def create_probe_engine(url: str, *, application_name: str, timeout: float) -> AsyncEngine:
    """An engine of its own for the readiness probe: a fresh connection each time (no pool), so
    that a pool exhausted by requests never holds readiness up, and a connect timeout."""
    return create_async_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "timeout": timeout,
            "command_timeout": timeout,
            "server_settings": {"application_name": f"{application_name}-probe"},
        },
    )


async def database_ready(engine: AsyncEngine, within: float = 0.8) -> bool:
    """Whether ``SELECT 1`` answers within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def page(items: list[Any], *, total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, in the session's transaction (SQLAlchemy's
    adapter begins it on the first statement it runs: one is run here), for what only the
    driver does (COPY): it sees what the session's other statements see and commits with them."""
    connection = await session.connection()
    await connection.execute(text("SELECT 1"))
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        raise RuntimeError("the driver's statements need the session's transaction")
    return driver
