"""credential_revocations (signed credentials revoked by serial) and operator_sessions (the
console's short-lived operator credentials)

Revision ID: 0007_credential_revocations
Revises: 0006_edge_device_login
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_credential_revocations"
down_revision = "0006_edge_device_login"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("credential_revocations", "operator_sessions"):
        stamp = "revoked_at" if table == "credential_revocations" else "created_at"
        op.create_table(
            table,
            sa.Column("serial", sa.String(length=32), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
            sa.Column(stamp, sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("serial", name=op.f(f"pk_{table}")),
            schema="setup",
        )
        op.create_index(
            op.f(f"ix_{table}_expires_at"), table, ["expires_at"], unique=False, schema="setup"
        )


def downgrade() -> None:
    for table in ("operator_sessions", "credential_revocations"):
        op.drop_index(op.f(f"ix_{table}_expires_at"), table_name=table, schema="setup")
        op.drop_table(table, schema="setup")
