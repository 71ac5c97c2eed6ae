"""detections.analysed_by: the helper edge that analysed a node's camera (overload hand-off)

Revision ID: 0004_detections_analysed_by
Revises: 0003_usage_func_optional
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_detections_analysed_by"
down_revision = "0003_usage_func_optional"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On the partitioned parent: PostgreSQL adds the column to every day's partition.
    op.add_column("detections", sa.Column("analysed_by", sa.String(32)), schema="vms")


def downgrade() -> None:
    op.drop_column("detections", "analysed_by", schema="vms")
