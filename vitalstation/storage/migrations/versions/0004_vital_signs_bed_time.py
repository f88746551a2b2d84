"""vital signs by bed and time: the bed detail's trends and the CSV export of a bed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


# A plain CREATE INDEX (no batch mode): vital_signs is the big table, never to be copied.
def upgrade() -> None:
    op.create_index(
        'ix_vital_signs_bed_vital_time', 'vital_signs', ['bed_ref', 'vital', 'measured_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_vital_signs_bed_vital_time', table_name='vital_signs')
