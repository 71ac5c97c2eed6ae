"""analysis requests: frames sent up by the edges for precise re-analysis

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("nid", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_requests")),
        schema="vms",
    )
    op.create_index("ix_analysis_requests_nid_received", "analysis_requests", ["nid", "received_at"], schema="vms")
    op.create_index("ix_analysis_requests_status", "analysis_requests", ["status", "id"], schema="vms")


def downgrade() -> None:
    op.drop_index("ix_analysis_requests_status", table_name="analysis_requests", schema="vms")
    op.drop_index("ix_analysis_requests_nid_received", table_name="analysis_requests", schema="vms")
    op.drop_table("analysis_requests", schema="vms")
