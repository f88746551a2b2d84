"""alarm keys: the engine's condition key and the alarm's full state, for restarts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alarm_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('snapshot', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('escalation', sa.Text(), nullable=True))
        batch_op.create_index('ix_alarms_alarm_key', ['alarm_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_alarms_alarm_key')
        batch_op.drop_column('escalation')
        batch_op.drop_column('snapshot')
        batch_op.drop_column('alarm_key')
