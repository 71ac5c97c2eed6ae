"""edges.time_zone: the zone of the date/time an edge's programs send (NULL: the fleet default)

Revision ID: 0003_edge_time_zone
Revises: 0002_camera_secrets
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_edge_time_zone"
down_revision = "0002_camera_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    column = sa.Column("time_zone", sa.String(length=64), nullable=True)
    op.add_column("edges", column, schema="setup")


def downgrade() -> None:
    op.drop_column("edges", "time_zone", schema="setup")
