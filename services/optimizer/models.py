"""The optimizer's tables (schema ``optimizer``): decision log, controls, pins, policy overrides,
rollouts, per-edge policy memory, routing for YOLO workers, focus events and the leadership
lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.decisions import Outcome
from shared.contracts.routing import AnalysisRoute
from shared.db import NAMING_CONVENTION, StrEnumColumn, utcnow


class Base(DeclarativeBase):
    """The optimizer's tables, in its own schema (as shared.db.make_base builds it, spelled out
    so that the type checker knows the class)."""

    metadata = MetaData(schema="optimizer", naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class Decision(Base):
    """One thing a policy decided for one edge, what it saw, what it asked for, and how it ended."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_edge_at", "edge_id", "at"),
        Index("ix_decisions_policy_at", "policy", "at"),
        Index("ix_decisions_pending", "outcome", postgresql_where="outcome = 'pending'"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sent to setup as decision_id
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    cycle_id: Mapped[str] = mapped_column(String(32))
    policy: Mapped[str] = mapped_column(String(32))
    edge_id: Mapped[int | None] = mapped_column(Integer)
    edge_name: Mapped[str | None] = mapped_column(String(100))
    nid: Mapped[str | None] = mapped_column(String(32))
    deployment_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    operations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending -> succeeded | failed | unknown (from later snapshots); applied for routing or
    # status-only decisions; dry_run when nothing was sent; rejected when setup refused the bulk
    # write.
    outcome: Mapped[str] = mapped_column(String(20), default=Outcome.PENDING.value)
    outcome_detail: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None] = mapped_column()


class Control(Base):
    """Global switches set through the API (paused, dry_run); they win over the settings."""

    __tablename__ = "controls"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(20), default="operator")


class Pin(Base):
    """An operator froze this edge: no policy changes its deployments."""

    __tablename__ = "pins"
    edge_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(20), default="operator")


class PolicyOverride(Base):
    """The API's tuning of one policy over the settings' defaults."""

    __tablename__ = "policy_overrides"
    policy: Mapped[str] = mapped_column(String(32), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PolicyChange(Base):
    """Who changed which policy's settings, when, and to what (the overrides asked for; a reset
    has none)."""

    __tablename__ = "policy_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    policy: Mapped[str] = mapped_column(String(32))
    changed_by: Mapped[str] = mapped_column(String(40))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reset: Mapped[bool] = mapped_column(Boolean, default=False)


class Rollout(Base):
    """A version wave rollout of one filename: who is in which wave, who failed, where they came
    from."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("uq_rollouts_filename_to", "filename", "to_version_key", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(63))
    to_version: Mapped[str] = mapped_column(String(40))
    to_version_key: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(
        String(20)
    )  # active | paused | halted | completed | superseded
    wave: Mapped[int] = mapped_column(Integer, default=0)
    wave_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # {"<edge_id>": wave number}; {"<edge_id>": previous version_key}; [edge ids rolled back]
    members: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    previous: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    failed: Mapped[list[int]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EdgeMemory(Base):
    """What a policy remembers about an edge between cycles (since-when timers, redeploy counts)."""

    __tablename__ = "edge_memory"
    edge_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy: Mapped[str] = mapped_column(String(32), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Route(Base):
    """Where an edge's analysis goes, as its YOLO worker reads it from GET /routing/{nid}."""

    __tablename__ = "routes"
    nid: Mapped[str] = mapped_column(String(32), primary_key=True)
    edge_id: Mapped[int] = mapped_column(Integer, index=True)
    analysis: Mapped[AnalysisRoute] = mapped_column(
        StrEnumColumn(AnalysisRoute), default=AnalysisRoute.LOCAL
    )
    helper_nid: Mapped[str | None] = mapped_column(String(32))
    route_low_confidence: Mapped[bool] = mapped_column(Boolean, default=False)
    low_confidence_share: Mapped[float | None] = mapped_column(Float)
    frames_sent_up_share: Mapped[float | None] = mapped_column(Float)
    decision_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FocusEvent(Base):
    """A detection that raises the neighbours of ``nid`` to focus mode until ``expires_at``."""

    __tablename__ = "focus_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    nid: Mapped[str] = mapped_column(String(32))
    classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Lease(Base):
    """Leadership: the replica whose lease has not expired is the only one that acts."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
