"""edges.device_login: the login name an edge's field devices report as ``username``

Revision ID: 0006_edge_device_login
Revises: 0005_master_sites
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_edge_device_login"
down_revision = "0005_master_sites"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "edges", sa.Column("device_login", sa.String(length=100), nullable=True), schema="setup"
    )
    op.create_unique_constraint(
        "uq_edges_device_login", "edges", ["device_login"], schema="setup"
    )


def downgrade() -> None:
    op.drop_constraint("uq_edges_device_login", "edges", schema="setup")
    op.drop_column("edges", "device_login", schema="setup")
