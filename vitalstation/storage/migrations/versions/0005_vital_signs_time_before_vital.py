"""vital signs by patient or bed, then time, then vital: a reading's vitals share index entries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

The patient and bed indexes were (patient or bed, vital, time): the vitals of one reading went
to as many places in each index, so a commit of n two-vital readings changed ~2n leaf pages of
each, every one written to the WAL in full (45 of the 161 pages a commit of 16 REST readings
wrote, per index). Time before vital puts a reading's vitals side by side, one leaf per reading,
and a bed's or patient's records come out in time order with no sort; the vital stays in the
key, so a query for one vital filters in the index without reading the table rows.
"""

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# Plain CREATE/DROP INDEX (no batch mode): vital_signs is the big table, never to be copied.
def upgrade() -> None:
    op.create_index(
        'ix_vital_signs_patient_time_vital', 'vital_signs',
        ['patient_ref', 'measured_at', 'vital'], unique=False,
    )
    op.create_index(
        'ix_vital_signs_bed_time_vital', 'vital_signs', ['bed_ref', 'measured_at', 'vital'],
        unique=False,
    )
    op.drop_index('ix_vital_signs_patient_vital_time', table_name='vital_signs')
    op.drop_index('ix_vital_signs_bed_vital_time', table_name='vital_signs')


def downgrade() -> None:
    op.create_index(
        'ix_vital_signs_patient_vital_time', 'vital_signs',
        ['patient_ref', 'vital', 'measured_at'], unique=False,
    )
    op.create_index(
        'ix_vital_signs_bed_vital_time', 'vital_signs', ['bed_ref', 'vital', 'measured_at'],
        unique=False,
    )
    op.drop_index('ix_vital_signs_patient_time_vital', table_name='vital_signs')
    op.drop_index('ix_vital_signs_bed_time_vital', table_name='vital_signs')
