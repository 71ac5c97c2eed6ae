"""master sites: which master serves each cluster, masters' heartbeats and health

Revision ID: 0005_master_sites
Revises: 0004_edge_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_master_sites"
down_revision = "0004_edge_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "masters",
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        schema="setup",
    )
    op.add_column("masters", sa.Column("health", sa.JSON(), nullable=True), schema="setup")
    op.add_column("clusters", sa.Column("master_id", sa.Integer(), nullable=True), schema="setup")
    op.create_foreign_key(
        op.f("fk_clusters_master_id_masters"),
        "clusters",
        "masters",
        ["master_id"],
        ["id"],
        source_schema="setup",
        referent_schema="setup",
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_clusters_master_id"), "clusters", ["master_id"], unique=False, schema="setup"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_clusters_master_id"), table_name="clusters", schema="setup")
    op.drop_constraint(
        op.f("fk_clusters_master_id_masters"), "clusters", type_="foreignkey", schema="setup"
    )
    op.drop_column("clusters", "master_id", schema="setup")
    op.drop_column("masters", "health", schema="setup")
    op.drop_column("masters", "last_seen_at", schema="setup")
