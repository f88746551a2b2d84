"""alarms: a partial index of the open alarms and one by time; the index on state dropped

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

Designed from the queries on ``alarms`` (storage/alarms.py, storage/history.py). Times of
SQLite's queries on a year of a busy 64-bed ward (200,000 alarms, ~1 KB of JSON a row):

- the open alarms (``load_snapshot`` at every start, the active list) filtered on ``state``
  with ``!=``, which no index serves: the whole table read, 175-240 ms, growing with every
  alarm kept (PostgreSQL 110-120 ms). ``ix_alarms_open`` (``raised_at`` WHERE ``state <>
  'resolved'``) holds the open ones only, newest first: 0.1 ms. The queries write that term
  with the literal (``schema.ALARM_OPEN``): PostgreSQL's generic plan of a prepared
  statement with ``state <> $1`` cannot use the index (329 ms against 0.04 ms).
  ``ix_alarms_state`` served no query: dropped.
- the newest-first list (the window's recent alarms, ``vitalstation alarms``): nothing on
  ``raised_at``, so the table read and sorted: 990 ms (PostgreSQL 256 ms).
  ``ix_alarms_raised``: 2 ms.
- one bed's alarms (its list, its trend's markers, its alarm trail): ``ix_alarms_bed_raised``
  (bed, time), 0-5 ms: kept. It costs an alarm commit a page per bed that raised an alarm
  (16.5 of the 52.9 WAL pages of a commit in the alarm-heavy bench). Rejected instead: (time,
  bed), the bed tested in the index: 2.4 pages a commit, and 227 of the alarm service's
  32,299 instructions per reading saved, but these queries then read every entry raised
  before the range's end: 11-40 ms here, 150-370 ms on 1,000,000 alarms (none is ever
  deleted), over the 100 ms a nurse should wait; (time) alone: 110-170 ms already here.

An alarm commit writes 53.3 WAL pages instead of 52.9 (state 3.0 out; open 1.0 and time 2.4
in); the alarm service's instructions per reading 32,299 -> 32,274 (alarm-heavy).
Plain CREATE/DROP INDEX (no batch mode): the table is not copied.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_OPEN = sa.text("state <> 'resolved'")


def upgrade() -> None:
    op.create_index(
        'ix_alarms_open', 'alarms', ['raised_at'], unique=False,
        sqlite_where=_OPEN, postgresql_where=_OPEN,
    )
    op.create_index('ix_alarms_raised', 'alarms', ['raised_at'], unique=False)
    op.drop_index('ix_alarms_state', table_name='alarms')


def downgrade() -> None:
    op.create_index('ix_alarms_state', 'alarms', ['state'], unique=False)
    op.drop_index('ix_alarms_raised', table_name='alarms')
    op.drop_index('ix_alarms_open', table_name='alarms')
