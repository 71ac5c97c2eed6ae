"""initial

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 03:05:59.009037
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Observation tables are partitioned by day on ts; partitions are created by the service
    # (services/vms/storage/partitions.py), ahead of time and on demand.
    op.execute("CREATE SEQUENCE vms.detections_id_seq")
    op.create_table('detections',
    sa.Column('id', sa.BigInteger(), server_default=sa.text("nextval('vms.detections_id_seq')"), nullable=False),
    sa.Column('nid', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('model_version', sa.String(length=40), nullable=False),
    sa.Column('fps', sa.Float(), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('inference_mean_ms', sa.Float(), nullable=True),
    sa.Column('inference_p50_ms', sa.Float(), nullable=True),
    sa.Column('inference_max_ms', sa.Float(), nullable=True),
    sa.Column('conf_threshold', sa.Float(), nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('detections', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('detected', sa.Integer(), nullable=False),
    sa.Column('below_threshold', sa.Integer(), nullable=False),
    sa.Column('frames_sent_up', sa.Integer(), nullable=False),
    sa.Column('min_confidence', sa.Float(), nullable=True),
    sa.Column('authenticated', sa.Boolean(), nullable=False),
    sa.Column('known', sa.Boolean(), nullable=False),
    schema='vms',
    postgresql_partition_by='RANGE (ts)'
    )
    op.create_index('ix_vms_detections_counts', 'detections', ['counts'], unique=False, schema='vms', postgresql_using='gin')
    op.create_index('ix_vms_detections_nid_ts', 'detections', ['nid', sa.literal_column('ts DESC')], unique=False, schema='vms')
    op.create_index('ix_vms_detections_ts', 'detections', [sa.literal_column('ts DESC')], unique=False, schema='vms')
    op.create_table('environment',
    sa.Column('nid', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('condition', sa.String(length=32), nullable=True),
    sa.Column('authenticated', sa.Boolean(), nullable=False),
    sa.Column('known', sa.Boolean(), nullable=False),
    schema='vms',
    postgresql_partition_by='RANGE (ts)'
    )
    op.create_index('ix_vms_environment_nid_ts', 'environment', ['nid', sa.literal_column('ts DESC')], unique=False, schema='vms')
    op.create_table('node_state',
    sa.Column('nid', sa.String(length=32), nullable=False),
    sa.Column('known', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('authenticated', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('condition', sa.String(length=32), nullable=True),
    sa.Column('condition_code', sa.String(length=16), nullable=True),
    sa.Column('previous_condition', sa.String(length=32), nullable=True),
    sa.Column('streak', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('condition_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('condition_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('environment_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('usage_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cpu', sa.Float(), nullable=True),
    sa.Column('memory', sa.Float(), nullable=True),
    sa.Column('func', sa.String(length=32), nullable=True),
    sa.Column('cpu_avg', sa.Float(), nullable=True),
    sa.Column('memory_avg', sa.Float(), nullable=True),
    sa.Column('detections_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detections', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('low_confidence_share', sa.Float(), nullable=True),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('batch_aux', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('nid', name=op.f('pk_node_state')),
    schema='vms'
    )
    op.create_table('usage',
    sa.Column('nid', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cpu', sa.Float(), nullable=False),
    sa.Column('memory', sa.Float(), nullable=False),
    sa.Column('func', sa.String(length=32), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=True),
    sa.Column('code', sa.String(length=16), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('authenticated', sa.Boolean(), nullable=False),
    sa.Column('known', sa.Boolean(), nullable=False),
    schema='vms',
    postgresql_partition_by='RANGE (ts)'
    )
    op.create_index('ix_vms_usage_nid_ts', 'usage', ['nid', sa.literal_column('ts DESC')], unique=False, schema='vms')
    op.execute("ALTER SEQUENCE vms.detections_id_seq OWNED BY vms.detections.id")


def downgrade() -> None:
    op.drop_index('ix_vms_usage_nid_ts', table_name='usage', schema='vms')
    op.drop_table('usage', schema='vms')
    op.drop_table('node_state', schema='vms')
    op.drop_index('ix_vms_environment_nid_ts', table_name='environment', schema='vms')
    op.drop_table('environment', schema='vms')
    op.drop_index('ix_vms_detections_ts', table_name='detections', schema='vms')
    op.drop_index('ix_vms_detections_nid_ts', table_name='detections', schema='vms')
    op.drop_index('ix_vms_detections_counts', table_name='detections', schema='vms', postgresql_using='gin')
    op.drop_table('detections', schema='vms')
    op.execute("DROP SEQUENCE IF EXISTS vms.detections_id_seq")
