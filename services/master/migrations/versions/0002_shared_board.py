"""the board of desired sets shared by a site's master processes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 10:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
        schema="master",
    )
    op.create_table(
        "board_desired",
        sa.Column("nid", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("committed", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("nid", name=op.f("pk_board_desired")),
        schema="master",
    )
    op.create_table(
        "board_observed",
        sa.Column("nid", sa.String(length=64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("nid", name=op.f("pk_board_observed")),
        schema="master",
    )


def downgrade() -> None:
    op.drop_table("board_observed", schema="master")
    op.drop_table("board_desired", schema="master")
    op.drop_table("leases", schema="master")
