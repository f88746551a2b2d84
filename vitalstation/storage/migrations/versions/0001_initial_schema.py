"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa
import vitalstation.storage.schema


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    op.create_table('beds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('ward', sa.String(length=64), nullable=True),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_beds')),
    sa.UniqueConstraint('label', name=op.f('uq_beds_label'))
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('input', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=500), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('excerpt', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letters_at', ['at'], unique=False)

    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('device_type', sa.String(length=100), nullable=False),
    sa.Column('manufacturer', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('firmware', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_input', sa.String(length=16), nullable=True),
    sa.Column('battery_level', sa.Float(), nullable=True),
    sa.Column('signal_quality', sa.Float(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'inactive', 'maintenance', 'retired')", name=op.f('ck_devices_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('device_id', name=op.f('uq_devices_device_id'))
    )
    op.create_table('directory_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_version'))
    )
    op.create_table('input_activity',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('input', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('key_prefix', sa.String(length=16), nullable=True),
    sa.Column('peer', sa.String(length=100), nullable=True),
    sa.Column('endpoint', sa.String(length=200), nullable=True),
    sa.Column('method', sa.String(length=10), nullable=True),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_input_activity'))
    )
    with op.batch_alter_table('input_activity', schema=None) as batch_op:
        batch_op.create_index('ix_input_activity_input_at', ['input', 'at'], unique=False)

    op.create_table('kinesis_checkpoints',
    sa.Column('stream', sa.String(length=128), nullable=False),
    sa.Column('shard_id', sa.String(length=128), nullable=False),
    sa.Column('sequence_number', sa.String(length=128), nullable=False),
    sa.Column('updated_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('stream', 'shard_id', name=op.f('pk_kinesis_checkpoints'))
    )
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_patients_patient_id'))
    )
    op.create_table('raw_payloads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('input', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=500), nullable=True),
    sa.Column('received_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_payloads')),
    sa.UniqueConstraint('sha256', name=op.f('uq_raw_payloads_sha256'))
    )
    op.create_table('unknown_devices',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_input', sa.String(length=16), nullable=False),
    sa.Column('reading_count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_unknown_devices'))
    )
    op.create_table('admissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_ref', sa.Integer(), nullable=False),
    sa.Column('bed_ref', sa.Integer(), nullable=False),
    sa.Column('admitted_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('discharged_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bed_ref'], ['beds.id'], name=op.f('fk_admissions_bed_ref_beds')),
    sa.ForeignKeyConstraint(['patient_ref'], ['patients.id'], name=op.f('fk_admissions_patient_ref_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admissions'))
    )
    with op.batch_alter_table('admissions', schema=None) as batch_op:
        batch_op.create_index('ix_admissions_bed_time', ['bed_ref', 'admitted_at'], unique=False)
        batch_op.create_index('ix_admissions_patient', ['patient_ref'], unique=False)

    op.create_table('alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('condition', sa.String(length=64), nullable=False),
    sa.Column('vital', sa.String(length=32), nullable=True),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('patient_ref', sa.Integer(), nullable=True),
    sa.Column('bed_ref', sa.Integer(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('limit_value', sa.Float(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('raised_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bed_ref'], ['beds.id'], name=op.f('fk_alarms_bed_ref_beds')),
    sa.ForeignKeyConstraint(['patient_ref'], ['patients.id'], name=op.f('fk_alarms_patient_ref_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarms'))
    )
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.create_index('ix_alarms_bed_raised', ['bed_ref', 'raised_at'], unique=False)
        batch_op.create_index('ix_alarms_state', ['state'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_ref', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('can_write_vitals', sa.Boolean(), nullable=False),
    sa.Column('can_read_patient', sa.Boolean(), nullable=False),
    sa.Column('last_used_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('use_count', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['device_ref'], ['devices.id'], name=op.f('fk_api_keys_device_ref_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_table('device_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_ref', sa.Integer(), nullable=False),
    sa.Column('bed_ref', sa.Integer(), nullable=True),
    sa.Column('patient_ref', sa.Integer(), nullable=True),
    sa.Column('assigned_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('unassigned_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('(bed_ref IS NULL) <> (patient_ref IS NULL)', name=op.f('ck_device_assignments_bed_or_patient')),
    sa.ForeignKeyConstraint(['bed_ref'], ['beds.id'], name=op.f('fk_device_assignments_bed_ref_beds')),
    sa.ForeignKeyConstraint(['device_ref'], ['devices.id'], name=op.f('fk_device_assignments_device_ref_devices')),
    sa.ForeignKeyConstraint(['patient_ref'], ['patients.id'], name=op.f('fk_device_assignments_patient_ref_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_assignments'))
    )
    with op.batch_alter_table('device_assignments', schema=None) as batch_op:
        batch_op.create_index('ix_device_assignments_device_time', ['device_ref', 'assigned_at'], unique=False)

    op.create_table('vital_signs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('device_ref', sa.Integer(), nullable=True),
    sa.Column('patient_ref', sa.Integer(), nullable=True),
    sa.Column('bed_ref', sa.Integer(), nullable=True),
    sa.Column('attribution', sa.String(length=16), nullable=False),
    sa.Column('vital', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('original_value', sa.Float(), nullable=False),
    sa.Column('original_unit', sa.String(length=16), nullable=False),
    sa.Column('measured_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('input', sa.String(length=16), nullable=False),
    sa.Column('data_source', sa.String(length=16), nullable=False),
    sa.Column('signal_quality', sa.Float(), nullable=True),
    sa.Column('battery_level', sa.Float(), nullable=True),
    sa.Column('payload_ref', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['bed_ref'], ['beds.id'], name=op.f('fk_vital_signs_bed_ref_beds')),
    sa.ForeignKeyConstraint(['device_ref'], ['devices.id'], name=op.f('fk_vital_signs_device_ref_devices')),
    sa.ForeignKeyConstraint(['patient_ref'], ['patients.id'], name=op.f('fk_vital_signs_patient_ref_patients')),
    sa.ForeignKeyConstraint(['payload_ref'], ['raw_payloads.id'], name=op.f('fk_vital_signs_payload_ref_raw_payloads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vital_signs')),
    sa.UniqueConstraint('device_id', 'vital', 'measured_at', name='uq_vital_signs_reading')
    )
    with op.batch_alter_table('vital_signs', schema=None) as batch_op:
        batch_op.create_index('ix_vital_signs_patient_vital_time', ['patient_ref', 'vital', 'measured_at'], unique=False)

    op.create_table('alarm_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('alarm_ref', sa.Integer(), nullable=False),
    sa.Column('at', vitalstation.storage.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['alarm_ref'], ['alarms.id'], name=op.f('fk_alarm_events_alarm_ref_alarms')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarm_events'))
    )
    with op.batch_alter_table('alarm_events', schema=None) as batch_op:
        batch_op.create_index('ix_alarm_events_alarm_at', ['alarm_ref', 'at'], unique=False)

    # The directory version row the writer polls to notice admin changes.
    op.bulk_insert(
        sa.table("directory_version", sa.column("id", sa.Integer), sa.column("version", sa.BigInteger)),
        [{"id": 1, "version": 0}],
    )


def downgrade() -> None:
    with op.batch_alter_table('alarm_events', schema=None) as batch_op:
        batch_op.drop_index('ix_alarm_events_alarm_at')

    op.drop_table('alarm_events')
    with op.batch_alter_table('vital_signs', schema=None) as batch_op:
        batch_op.drop_index('ix_vital_signs_patient_vital_time')

    op.drop_table('vital_signs')
    with op.batch_alter_table('device_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_device_assignments_device_time')

    op.drop_table('device_assignments')
    op.drop_table('api_keys')
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_alarms_state')
        batch_op.drop_index('ix_alarms_bed_raised')

    op.drop_table('alarms')
    with op.batch_alter_table('admissions', schema=None) as batch_op:
        batch_op.drop_index('ix_admissions_patient')
        batch_op.drop_index('ix_admissions_bed_time')

    op.drop_table('admissions')
    op.drop_table('unknown_devices')
    op.drop_table('raw_payloads')
    op.drop_table('patients')
    op.drop_table('kinesis_checkpoints')
    with op.batch_alter_table('input_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_input_activity_input_at')

    op.drop_table('input_activity')
    op.drop_table('directory_version')
    op.drop_table('devices')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_at')

    op.drop_table('dead_letters')
    op.drop_table('beds')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
