"""edge tokens: ids from a sequence, revocations per node

Revision ID: 0004_edge_tokens
Revises: 0003_edge_time_zone
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_edge_tokens"
down_revision = "0003_edge_time_zone"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE IF NOT EXISTS setup.edge_token_ids START 1")
    op.create_table(
        "edge_token_revocations",
        sa.Column("nid", sa.String(length=32), nullable=False),
        sa.Column("min_token_id", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nid", name=op.f("pk_edge_token_revocations")),
        schema="setup",
    )


def downgrade() -> None:
    op.drop_table("edge_token_revocations", schema="setup")
    op.execute("DROP SEQUENCE IF EXISTS setup.edge_token_ids")
