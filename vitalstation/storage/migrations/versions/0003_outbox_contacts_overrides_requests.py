"""notification outbox, contacts, limit overrides, alarm requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa
import vitalstation.storage.schema


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alarm_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('done_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarm_requests'))
    )
    with op.batch_alter_table('alarm_requests', schema=None) as batch_op:
        batch_op.create_index('ix_alarm_requests_status', ['status', 'id'], unique=False)

    op.create_table('notification_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('scope_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=500), nullable=False),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_contacts')),
    sa.UniqueConstraint('scope', 'scope_id', 'role', 'channel', 'address', name='uq_notification_contacts_contact')
    )
    op.create_table('notification_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('alarm_ref', sa.Integer(), nullable=True),
    sa.Column('alarm_key', sa.String(length=200), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=500), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox'))
    )
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_notification_outbox_alarm', ['alarm_ref'], unique=False)
        batch_op.create_index('ix_notification_outbox_due', ['status', 'next_attempt_at'], unique=False)

    op.create_table('limit_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('admission_ref', sa.Integer(), nullable=True),
    sa.Column('vital', sa.String(length=32), nullable=False),
    sa.Column('limits', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=False),
    sa.Column('set_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed_by', sa.String(length=100), nullable=True),
    sa.Column('removed_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['admission_ref'], ['admissions.id'], name=op.f('fk_limit_overrides_admission_ref_admissions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_limit_overrides'))
    )
    with op.batch_alter_table('limit_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_limit_overrides_patient', ['patient_id', 'removed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('limit_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_limit_overrides_patient')

    op.drop_table('limit_overrides')
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_outbox_due')
        batch_op.drop_index('ix_notification_outbox_alarm')

    op.drop_table('notification_outbox')
    op.drop_table('notification_contacts')
    with op.batch_alter_table('alarm_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_alarm_requests_status')

    op.drop_table('alarm_requests')
