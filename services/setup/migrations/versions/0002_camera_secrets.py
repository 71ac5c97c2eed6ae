"""camera credentials encrypted at rest

The whole camera URL moves into ``rtsp_secret``, encrypted with the newest key of
SETUP_SECRET_KEYS (the local development key in local mode); ``rtsp_url`` keeps only the masked
form; the clear ``rtsp_username`` / ``rtsp_password`` columns go.

Revision ID: 0002_camera_secrets
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

from services.setup.secret_box import SecretBox, box_from_environment
from services.setup.edges.rtsp import masked, split_credentials, with_credentials

revision = "0002_camera_secrets"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "setup"


def _box() -> SecretBox:
    box = box_from_environment()
    if box is None:
        raise RuntimeError(
            "edges hold camera URLs to encrypt: set SETUP_SECRET_KEYS "
            "(Fernet keys, newest first) and migrate again"
        )
    return box


def upgrade() -> None:
    op.add_column("edges", sa.Column("rtsp_secret", sa.Text(), nullable=True), schema=SCHEMA)
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        f"SELECT id, rtsp_url, rtsp_username, rtsp_password FROM {SCHEMA}.edges "
        "WHERE rtsp_url IS NOT NULL"
    )).all()
    box = _box() if rows else None
    for row in rows:
        assert box is not None
        full = with_credentials(row.rtsp_url, row.rtsp_username, row.rtsp_password)
        conn.execute(
            sa.text(
                f"UPDATE {SCHEMA}.edges SET rtsp_url = :shown, rtsp_secret = :secret WHERE id = :id"
            ),
            {"shown": masked(full), "secret": box.encrypt(full), "id": row.id},
        )
    _drop_clear_columns()


def _drop_clear_columns() -> None:
    op.drop_column("edges", "rtsp_username", schema=SCHEMA)
    op.drop_column("edges", "rtsp_password", schema=SCHEMA)


def downgrade() -> None:
    op.add_column("edges", sa.Column("rtsp_username", sa.String(length=200), nullable=True), schema=SCHEMA)
    op.add_column("edges", sa.Column("rtsp_password", sa.String(length=200), nullable=True), schema=SCHEMA)
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(f"SELECT id, rtsp_secret FROM {SCHEMA}.edges WHERE rtsp_secret IS NOT NULL")
    ).all()
    box = _box() if rows else None
    for row in rows:
        assert box is not None
        bare, user, password = split_credentials(box.decrypt(row.rtsp_secret))
        conn.execute(
            sa.text(
                f"UPDATE {SCHEMA}.edges SET rtsp_url = :u, rtsp_username = :n, rtsp_password = :p "
                "WHERE id = :id"
            ),
            {"u": bare, "n": user, "p": password, "id": row.id},
        )
    op.drop_column("edges", "rtsp_secret", schema=SCHEMA)
