"""The master's own tables (schema ``master``). Setup owns the AI rows and the desired state; the
master keeps only what it needs to find a package again and the record of its builds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION, TimestampMixin


class Base(DeclarativeBase):
    """The master's tables, in its own schema (as shared.db.make_base builds it, spelled out
    so that the type checker knows the class)."""

    metadata = MetaData(schema="master", naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class BuildState(StrEnum):
    """The master's record of its last build of an AI (setup's row has the AI's own status)."""

    QUEUED = "queued"  # asked for just now (in answers; a record starts as running)
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


class PackageUpload(TimestampMixin, Base):
    """A validated package in the artifact store, by the names it was uploaded under.

    Written before setup hears of the AI, so a build asked for by setup finds the package."""

    __tablename__ = "package_uploads"
    __table_args__ = (UniqueConstraint("filename", "ai_class", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(40))
    ai_class: Mapped[str] = mapped_column(String(2))
    version: Mapped[str] = mapped_column(String(40))
    package_digest: Mapped[str] = mapped_column(String(71), index=True)
    package_size: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(20))  # "archive" or "folder"


class BuildJob(TimestampMixin, Base):
    """The last build of one AI (setup's id) and how it ended."""

    __tablename__ = "build_jobs"

    ai_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(10))  # a BuildState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    package_digest: Mapped[str | None] = mapped_column(String(71))
    image_ref: Mapped[str | None] = mapped_column(String(500))
    image_digest: Mapped[str | None] = mapped_column(String(71))
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class BoardLease(Base):
    """Leadership among the master processes of a site (shared.leases): the holder of the
    ``board:<site>`` lease reconciles and publishes; the others serve the board it writes."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class BoardDesired(Base):
    """A pull edge's committed desired set, as the leading master committed it (written in the
    pass, with a NOTIFY): ``committed`` is the board's own form (its tag is computed over it),
    ``body`` the desired route's answer."""

    __tablename__ = "board_desired"

    nid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(BigInteger)
    committed: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[str] = mapped_column(Text)


class BoardObserved(Base):
    """A pull edge's last report, whichever master process it reached (NOTIFY to the leader)."""

    __tablename__ = "board_observed"

    nid: Mapped[str] = mapped_column(String(64), primary_key=True)
    report: Mapped[str] = mapped_column(Text)  # the ObservedSet as the agent sent it
    at: Mapped[float] = mapped_column(Float)  # time.time() when it arrived
