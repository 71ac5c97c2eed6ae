"""The console's one table (schema ``console``): signed-in sessions, kept server-side so that
signing out or expiry ends them at once. The cookie holds a random token; only its SHA-256 is
stored, and the session's operator credential (from setup, at sign-in) is stored encrypted with a
key derived from that token: the table alone opens nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Boolean, DateTime, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(schema="console", naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class Session(Base):
    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # The operator credential setup issued for this session: its serial (revoked at setup on
    # sign-out), and the credential itself sealed with the cookie's token (sessions.seal).
    serial: Mapped[str] = mapped_column(String(32), default="")
    credential: Mapped[str] = mapped_column(Text, default="")
    # Signed out, its credential not yet revoked at setup (the sweep tries again).
    ended: Mapped[bool] = mapped_column(Boolean, default=False)
