"""console: each session's operator credential (sealed) and its serial; signed-out sessions

Revision ID: console_0002
Revises: console_0001
Create Date: 2026-12-07 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "console_0002"
down_revision = "console_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions of before were signed in with the operator token the console held: none carries
    # a credential of its own, so they end here (the operator signs in again).
    op.execute("DELETE FROM console.sessions")
    op.add_column(
        "sessions",
        sa.Column("serial", sa.String(length=32), nullable=False, server_default=""),
        schema="console",
    )
    op.add_column(
        "sessions",
        sa.Column("credential", sa.Text(), nullable=False, server_default=""),
        schema="console",
    )
    op.add_column(
        "sessions",
        sa.Column("ended", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema="console",
    )


def downgrade() -> None:
    for column in ("ended", "credential", "serial"):
        op.drop_column("sessions", column, schema="console")
