"""The station's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every time is stored as UTC. A vital-sign record is one vital of one reading; the unique key
``(device_id, vital, measured_at)`` is what makes a re-sent reading a duplicate instead of a
second record, whichever input it came by. Changing this file means a new Alembic revision in
``storage/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# The text of each minute's start by (year, month, day, hour, minute), made once per minute
# instead of once per time (str() of an aware datetime costs ~0.9 µs, most of it spent on the
# offset the text then drops). Cleared when it holds _MINUTES_MAX minutes.
_MINUTES_MAX = 4_096
_minutes: dict[tuple[int, int, int, int, int], str] = {}


def sqlite_time_text(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC with microseconds.

    ``YYYY-MM-DD HH:MM:SS.ffffff``, as str() of the naive UTC time gives it (with the
    microseconds str() leaves out when they are 0); the minute's part from ``_minutes``. For
    the statements written through the driver's cursor (the writer's and the alarm store's hot
    paths), which skip :class:`UTCDateTime`'s bind processing.
    """
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; every time must be UTC-aware")
        value = value.astimezone(UTC)
    key = (value.year, value.month, value.day, value.hour, value.minute)
    prefix = _minutes.get(key)
    if prefix is None:
        if len(_minutes) >= _MINUTES_MAX:
            _minutes.clear()
        # str(): isoformat with " " and a zero-padded year (strftime's %Y is not, below 1000)
        minute = value.replace(second=0, microsecond=0, tzinfo=None)
        prefix = _minutes[key] = str(minute)[:-2]
    return f"{prefix}{value.second:02d}.{value.microsecond:06d}"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out, on every backend.

    SQLite has no time zones: values are stored as naive UTC text there, which also keeps the
    unique reading key byte-for-byte comparable. PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not UTC:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store; every time must be UTC-aware")
            value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _now_utc() -> datetime:
    return datetime.now(UTC)


patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=_now_utc),
)

beds = Table(
    "beds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(64), nullable=False, unique=True),
    Column("ward", String(64)),
    Column("created_at", UTCDateTime, nullable=False, default=_now_utc),
)

admissions = Table(
    "admissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_ref", ForeignKey("patients.id"), nullable=False),
    Column("bed_ref", ForeignKey("beds.id"), nullable=False),
    Column("admitted_at", UTCDateTime, nullable=False),
    Column("discharged_at", UTCDateTime),
    Index("ix_admissions_bed_time", "bed_ref", "admitted_at"),
    Index("ix_admissions_patient", "patient_ref"),
)

DEVICE_STATUSES = ("active", "inactive", "maintenance", "retired")

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("device_type", String(100), nullable=False, default=""),
    Column("manufacturer", String(100), nullable=False, default=""),
    Column("model", String(100), nullable=False, default=""),
    Column("firmware", String(100), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", UTCDateTime, nullable=False, default=_now_utc),
    Column("last_seen_at", UTCDateTime),
    Column("last_input", String(16)),
    Column("battery_level", Float),
    Column("signal_quality", Float),
    CheckConstraint(
        "status IN ('active', 'inactive', 'maintenance', 'retired')", name="status"
    ),
)

# Where a device is over time. A reading belongs to whoever the device served at its
# measurement time: the patient it was assigned to, or the patient admitted to its bed.
device_assignments = Table(
    "device_assignments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_ref", ForeignKey("devices.id"), nullable=False),
    Column("bed_ref", ForeignKey("beds.id")),
    Column("patient_ref", ForeignKey("patients.id")),
    Column("assigned_at", UTCDateTime, nullable=False),
    Column("unassigned_at", UTCDateTime),
    CheckConstraint(
        "(bed_ref IS NULL) <> (patient_ref IS NULL)", name="bed_or_patient"
    ),
    Index("ix_device_assignments_device_time", "device_ref", "assigned_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_ref", ForeignKey("devices.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    # A keyed hash of the whole key (never the key): keys are random, so no slow hash is needed.
    Column("key_hash", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=_now_utc),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("can_write_vitals", Boolean, nullable=False, default=True),
    Column("can_read_patient", Boolean, nullable=False, default=False),
    Column("last_used_at", UTCDateTime),
    Column("use_count", BigInteger, nullable=False, default=0),
)

# What a device actually sent, kept as received (bounded by the input) and shared by every
# record parsed from it. Identical payloads are kept once.
raw_payloads = Table(
    "raw_payloads",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("input", String(16), nullable=False),
    Column("source_ref", String(500)),
    Column("received_at", UTCDateTime, nullable=False),
    Column("content", Text, nullable=False),
)

# Attribution of a record at its measurement time.
ATTRIBUTIONS = ("patient", "bed", "unassigned", "unknown_device")

vital_signs = Table(
    "vital_signs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("device_id", String(64)),
    Column("device_ref", ForeignKey("devices.id")),
    Column("patient_ref", ForeignKey("patients.id")),
    Column("bed_ref", ForeignKey("beds.id")),
    Column("attribution", String(16), nullable=False),
    Column("vital", String(32), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(16), nullable=False),
    Column("original_value", Float, nullable=False),
    Column("original_unit", String(16), nullable=False),
    Column("measured_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("input", String(16), nullable=False),
    Column("data_source", String(16), nullable=False, default="device"),
    Column("signal_quality", Float),
    Column("battery_level", Float),
    Column("payload_ref", ForeignKey("raw_payloads.id")),
    Column("notes", Text),
    UniqueConstraint("device_id", "vital", "measured_at", name="uq_vital_signs_reading"),
    # A patient's and a bed's records by time (0004: a bed's trends and export; records of a
    # bed with nobody admitted carry no patient). 0005: time before vital, so the vitals of one
    # reading are neighbours in each index (one leaf page changed per reading, not one per
    # vital); the vital is still in the key for the queries that want one vital.
    Index("ix_vital_signs_patient_time_vital", "patient_ref", "measured_at", "vital"),
    Index("ix_vital_signs_bed_time_vital", "bed_ref", "measured_at", "vital"),
)

# Devices that sent readings without being registered: shown to the admin for registration.
unknown_devices = Table(
    "unknown_devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("last_input", String(16), nullable=False),
    Column("reading_count", BigInteger, nullable=False, default=0),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # limit | technical | news2
    Column("condition", String(64), nullable=False),
    Column("vital", String(32)),
    Column("priority", String(8), nullable=False),  # high | medium | low
    Column("state", String(16), nullable=False),
    Column("device_id", String(64)),
    Column("patient_ref", ForeignKey("patients.id")),
    Column("bed_ref", ForeignKey("beds.id")),
    Column("value", Float),
    Column("limit_value", Float),
    Column("message", Text, nullable=False, default=""),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    # 0002: the engine's condition key, the alarm as the engine holds it (JSON, to resume after
    # a restart) and its escalation chain (JSON, or NULL). 0006 dropped 0002's index on the key:
    # no query looks an alarm up by it.
    Column("alarm_key", String(200)),
    Column("snapshot", Text),
    Column("escalation", Text),
    # A bed's alarms by time: its list, its trend's markers and its alarm trail read only the
    # bed's entries (a (time, bed) index instead would write fewer pages per alarm commit, but
    # these would read every alarm raised before the range's end: 0007's docstring).
    Index("ix_alarms_bed_raised", "bed_ref", "raised_at"),
    # 0007: the newest-first lists (the window's recent alarms, ``vitalstation alarms``).
    Index("ix_alarms_raised", "raised_at"),
)

# 0007: the open alarms, newest first (the active list; the snapshot a start-up restores): a
# few rows, where ``state`` scanned the table. A planner uses a partial index for a query whose
# WHERE implies the index's, so the queries use this term itself, the literal in the text:
# PostgreSQL's generic plan of a prepared statement cannot count on a bound parameter's value.
ALARM_OPEN = alarms.c.state.op("<>", is_comparison=True)(literal_column("'resolved'"))
Index(
    "ix_alarms_open", alarms.c.raised_at, sqlite_where=ALARM_OPEN, postgresql_where=ALARM_OPEN
)

alarm_events = Table(
    "alarm_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("alarm_ref", ForeignKey("alarms.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("origin", String(100), nullable=False, default=""),
    Column("details", Text, nullable=False, default=""),
    # 0008: one alarm's steps (a handful, sorted by time in the query); the time left out of
    # the entry, which it made four times as large, for fewer pages written per alarm commit.
    Index("ix_alarm_events_alarm", "alarm_ref"),
)

# 0010: people's alarm steps by time (`vitalstation audit`). The station's own steps, nearly
# all of them, never enter it, so an alarm commit writes no page for it; the queries write the
# term with the literal, as for ALARM_OPEN.
ALARM_EVENT_BY_PERSON = alarm_events.c.actor.op("<>", is_comparison=True)(
    literal_column("'system'"))
Index(
    "ix_alarm_events_people_at", alarm_events.c.at,
    sqlite_where=ALARM_EVENT_BY_PERSON, postgresql_where=ALARM_EVENT_BY_PERSON,
)

# 0003: per-patient limit overrides (in force while ``removed_at`` is NULL; kept as history).
limit_overrides = Table(
    "limit_overrides",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("admission_ref", ForeignKey("admissions.id")),
    Column("vital", String(32), nullable=False),
    Column("limits", Text, nullable=False),  # JSON: VitalLimits.to_dict()
    Column("author", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("origin", String(100), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime),
    Column("removed_by", String(100)),
    Column("removed_reason", Text),
    Index("ix_limit_overrides_patient", "patient_id", "removed_at"),
)

# 0003: the notification outbox: one row per message to deliver (email, webhook, station,
# DynamoDB item), retried with back-off until delivered or failed.
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("alarm_ref", Integer),
    Column("alarm_key", String(200)),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(500), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_notification_outbox_due", "status", "next_attempt_at"),
    Index("ix_notification_outbox_alarm", "alarm_ref"),
)

# 0003: who is notified: per ward (scope_id = ward name, "" for every ward) or per patient.
notification_contacts = Table(
    "notification_contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scope", String(16), nullable=False),  # ward | patient
    Column("scope_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # nurse | doctor | ems
    Column("channel", String(16), nullable=False),  # email | webhook
    Column("address", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    UniqueConstraint(
        "scope", "scope_id", "role", "channel", "address", name="uq_notification_contacts_contact"
    ),
)

# 0003: alarm actions asked for by another process (the CLI) and applied by the running
# station's tick; the CLI waits for ``status`` to leave ``pending``.
alarm_requests = Table(
    "alarm_requests",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("action", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("status", String(16), nullable=False),  # pending | done | failed
    Column("result", Text),
    Column("done_at", UTCDateTime),
    Index("ix_alarm_requests_status", "status", "id"),
)

kinesis_checkpoints = Table(
    "kinesis_checkpoints",
    metadata,
    Column("stream", String(128), primary_key=True),
    Column("shard_id", String(128), primary_key=True),
    Column("sequence_number", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

input_activity = Table(
    "input_activity",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("input", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("device_id", String(64)),
    Column("key_prefix", String(16)),
    Column("peer", String(100)),
    Column("endpoint", String(200)),
    Column("method", String(10)),
    Column("status", Integer),
    Column("duration_ms", Float),
    Column("error", Text),
    Index("ix_input_activity_input_at", "input", "at"),
)

# Payloads an input could not turn into readings: kept with the reason, never silently lost.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("input", String(16), nullable=False),
    Column("source_ref", String(500)),
    Column("reason", Text, nullable=False),
    Column("excerpt", Text, nullable=False, default=""),
    Index("ix_dead_letters_at", "at"),
)

# Who changed what: admissions, device assignments, limits, keys. Alarm actions are in
# alarm_events.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("details", Text, nullable=False, default=""),
    Index("ix_audit_log_at", "at"),
)

# One row, bumped by every change to patients, beds, admissions, devices or assignments, so
# the writer knows when its in-memory directory is stale (changes may come from another
# process: the CLI, another station on the same PostgreSQL).
directory_version = Table(
    "directory_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
