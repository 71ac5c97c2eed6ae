"""usage.func optional: the field's first monitoring program sends no func

Revision ID: 0003_usage_func_optional
Revises: 0002
"""
from alembic import op

revision = "0003_usage_func_optional"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("usage", "func", nullable=True, schema="vms")


def downgrade() -> None:
    op.execute("UPDATE vms.usage SET func = '' WHERE func IS NULL")
    op.alter_column("usage", "func", nullable=False, schema="vms")
