"""alarms: no index on alarm_key (no query looks an alarm up by its key)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

The station finds an alarm row by id (the engine learns it when the row is inserted) and lists
alarms by state, bed and time; the condition key is read back only inside the rows (a restart's
snapshot), never searched. The index cost every alarm store commit ~5.7 of its ~46 pages
written to the WAL (each new row's key lands on its own leaf; two pwrites a page). Dropped;
downgrade puts it back.
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


# Plain DROP/CREATE INDEX (no batch mode): nothing else changes, the table is not copied.
def upgrade() -> None:
    op.drop_index('ix_alarms_alarm_key', table_name='alarms')


def downgrade() -> None:
    op.create_index('ix_alarms_alarm_key', 'alarms', ['alarm_key'], unique=False)
