"""policy changes: who changed which policy's settings

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("changed_by", sa.String(length=40), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reset", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_changes")),
        schema="optimizer",
    )
    op.create_index(
        op.f("ix_optimizer_policy_changes_at"),
        "policy_changes",
        ["at"],
        unique=False,
        schema="optimizer",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_optimizer_policy_changes_at"), table_name="policy_changes", schema="optimizer"
    )
    op.drop_table("policy_changes", schema="optimizer")
