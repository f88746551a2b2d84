"""alarm_events: a partial index of people's steps by time, for `vitalstation audit`

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24

`vitalstation audit` lists what people did, newest first: the audit log (indexed by time
since 0001) with the alarm steps whose actor is a person (acknowledged, paused, answered,
escalated by a nurse, commented). Without an index on their time, every listing would read
the whole of ``alarm_events``, which grows by a few rows for every alarm and is never pruned.

The index holds only rows with ``actor <> 'system'``: the station's own steps (raised, asked,
escalated on time-out, resolved), nearly every row, never enter it, so an alarm commit in the
pipeline writes no page for it. (0008 took the time out of the by-alarm index to save those
pages; this keeps them saved.) The queries write the term with the literal, so that
PostgreSQL's generic plans and SQLite can use it (``schema.ALARM_EVENT_BY_PERSON``).

Plain CREATE/DROP INDEX (no batch mode): the table is not copied.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_BY_PERSON = sa.text("actor <> 'system'")


def upgrade() -> None:
    op.create_index(
        'ix_alarm_events_people_at', 'alarm_events', ['at'], unique=False,
        sqlite_where=_BY_PERSON, postgresql_where=_BY_PERSON,
    )


def downgrade() -> None:
    op.drop_index('ix_alarm_events_people_at', table_name='alarm_events')
