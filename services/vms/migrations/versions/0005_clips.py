"""clips: the index of the event clips the edges upload (files under VMS_CLIPS_DIR)

Revision ID: 0005_clips
Revises: 0004_detections_analysed_by
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_clips"
down_revision = "0004_detections_analysed_by"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clips",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("nid", sa.String(32), nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("classes", JSONB, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        schema="vms",
    )
    op.create_index("ix_clips_nid_started", "clips", ["nid", "started_at"], schema="vms")
    op.create_index("ix_clips_stored", "clips", ["stored_at"], schema="vms")


def downgrade() -> None:
    op.drop_table("clips", schema="vms")
