"""Setup's tables (schema ``setup``): what exists in the fleet and what should run where."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.contracts.fleet import DesiredState, EdgeStatus, ObservedState, PackageStatus
from shared.db import NAMING_CONVENTION, StrEnumColumn, TimestampMixin, utcnow


class Base(DeclarativeBase):
    """Setup's tables, in its own schema (as shared.db.make_base builds it, spelled out so that
    the type checker knows the class)."""

    metadata = MetaData(schema="setup", naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class Cluster(TimestampMixin, Base):
    __tablename__ = "clusters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    runtime: Mapped[str] = mapped_column(String(20), default="agent")
    namespace: Mapped[str] = mapped_column(String(63), default="edge-ai")
    # The master that registered as serving this cluster (POST /masters/register); NULL: none,
    # the default master (EDGE_MASTER_URL) is asked.
    master_id: Mapped[int | None] = mapped_column(
        ForeignKey("masters.id", ondelete="SET NULL", use_alter=True), index=True
    )


class Master(TimestampMixin, Base):
    __tablename__ = "masters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), index=True
    )
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    # Set by the master's own registration and heartbeats; NULL: a record only (never heard of).
    last_seen_at: Mapped[datetime | None] = mapped_column()
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Edge(TimestampMixin, Base):
    __tablename__ = "edges"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    nid: Mapped[str] = mapped_column(String(32), unique=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="RESTRICT"), index=True
    )
    type: Mapped[int] = mapped_column(Integer, default=1)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    supports_analysis: Mapped[bool] = mapped_column(Boolean, default=False)
    # The camera URL as shown (credentials masked), and the whole URL encrypted at rest
    # (services.setup.secret_box); only services read it back, through /edges/{id}/camera.
    rtsp_url: Mapped[str | None] = mapped_column(Text)
    rtsp_secret: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    node_name: Mapped[str | None] = mapped_column(String(253))
    agent_url: Mapped[str | None] = mapped_column(String(500))
    capacity_cpu: Mapped[float | None] = mapped_column(Float)
    capacity_memory_mb: Mapped[int | None] = mapped_column(Integer)
    capacity_gpu: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=EdgeStatus.ACTIVE)
    token_hash: Mapped[str | None] = mapped_column(String(64))
    # Zone of the date/time strings its programs send (the field's run Korean time); NULL: the
    # fleet default (VMS_FIELD_TIMEZONE).
    time_zone: Mapped[str | None] = mapped_column(String(64))
    # The login name its field devices report as ``username`` (edge-master-01-1129): their
    # tokenless records land under this edge's nid (the VMS maps it; VMS_ALLOW_ANONYMOUS).
    device_login: Mapped[str | None] = mapped_column(String(100), unique=True)


class AiPackage(TimestampMixin, Base):
    __tablename__ = "ai_packages"
    __table_args__ = (UniqueConstraint("filename", "ai_class", "version_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[str] = mapped_column(String(40))
    version_key: Mapped[str] = mapped_column(String(40))
    ai_class: Mapped[str] = mapped_column(String(8))
    condition: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    package_digest: Mapped[str | None] = mapped_column(String(71))
    package_size: Mapped[int | None] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    image_ref: Mapped[str | None] = mapped_column(String(500))
    image_digest: Mapped[str | None] = mapped_column(String(71))
    status: Mapped[str] = mapped_column(String(20), default=PackageStatus.UPLOADED)
    failure_reason: Mapped[str | None] = mapped_column(Text)


class Deployment(TimestampMixin, Base):
    __tablename__ = "deployments"
    __table_args__ = (
        # One AI of a given filename per edge at a time, unless the operator asked otherwise.
        Index(
            "uq_deployments_edge_filename_active",
            "edge_id",
            "filename",
            unique=True,
            postgresql_where=text(f"desired = '{DesiredState.RUNNING}' AND NOT allow_multiple"),
        ),
        Index("ix_deployments_desired_edge", "desired", "edge_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    edge_id: Mapped[int] = mapped_column(ForeignKey("edges.id", ondelete="CASCADE"), index=True)
    ai_id: Mapped[int] = mapped_column(
        ForeignKey("ai_packages.id", ondelete="RESTRICT"), index=True
    )
    filename: Mapped[str] = mapped_column(String(63))
    desired: Mapped[DesiredState] = mapped_column(
        StrEnumColumn(DesiredState), default=DesiredState.RUNNING
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allow_multiple: Mapped[bool] = mapped_column(Boolean, default=False)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    observed: Mapped[ObservedState] = mapped_column(
        StrEnumColumn(ObservedState), default=ObservedState.PENDING
    )
    observed_reason: Mapped[str | None] = mapped_column(Text)
    observed_at: Mapped[datetime | None] = mapped_column()
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(20), default="operator")
    decision_id: Mapped[str | None] = mapped_column(String(64))

    ai: Mapped[AiPackage] = relationship(lazy="raise")
    edge: Mapped[Edge] = relationship(lazy="raise")


class ConditionCode(Base):
    """Environment AI result code -> condition (e.g. "2" -> RAINY)."""

    __tablename__ = "condition_codes"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    condition: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")


class ConditionAiClass(Base):
    """Condition -> the ai_class of the variant made for it (e.g. RAINY -> 02)."""

    __tablename__ = "condition_ai_classes"
    condition: Mapped[str] = mapped_column(String(32), primary_key=True)
    ai_class: Mapped[str] = mapped_column(String(8))


class LegacyRequest(Base):
    """What the field's /request_* routes were asked, kept for audit."""

    __tablename__ = "legacy_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    route: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CredentialRevocation(Base):
    """A signed credential (shared.credentials) revoked alone, by its serial: listed on
    ``GET /keys`` until the credential would have expired anyway (then pruned)."""

    __tablename__ = "credential_revocations"
    serial: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # the credential's, unix s
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class OperatorSession(Base):
    """An operator credential setup issued to the console for one sign-in (``POST
    /operator/sessions``): the console may revoke these, and only these, by serial."""

    __tablename__ = "operator_sessions"
    serial: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
