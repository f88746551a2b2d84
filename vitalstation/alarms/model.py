"""The values the alarm logic hands out: priorities, alarm snapshots, transitions, notifications.

Everything here is a plain value (named tuples and string enums), so that the pipeline can
store it, the window can show it and ``serve`` can print it without knowing how it was made.
``to_dict`` gives a JSON-ready form; ``Alarm.from_dict`` reads it back (restart).

The values are named tuples, not frozen dataclasses: each transition makes a snapshot of its
alarm, a transition and often a chain and a notification, and a tuple is built in one step
from its values (0.5–0.8 µs for an alarm's 25 fields here) where a frozen dataclass sets each
field through ``object.__setattr__`` (6.7 µs). They are immutable all the same. Change one
with ``_replace``. The hot paths (a transition, its chain and notifications, NEWS2's values)
build them with ``tuple.__new__(Cls, (every value, in field order))``, which skips the named
tuple's ``__new__`` frame and its keyword handling; tests/alarms/test_escalation.py checks that
each such value has every field and equals one built with keywords.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from vitalstation.domain.vitals import VitalKind

if TYPE_CHECKING:
    from vitalstation.alarms.escalation import ChainState

# Who acts when nobody does: automatic transitions (raised, resolved, pause expired, escalated).
SYSTEM_ACTOR = "system"
SYSTEM_ORIGIN = "engine"
# Operator origins: "station:<name>" (the window), "cli", "rest:<device>" (a bedside device).
ORIGIN_CLI = "cli"
STATION_ORIGIN_PREFIX = "station:"
DEVICE_ORIGIN_PREFIX = "rest:"
# The alarm_events columns hold 100 characters for actor and origin.
MAX_ACTOR_CHARS = 100


class Priority(enum.Enum):
    """IEC 60601-1-8 alarm priority; ordered LOW < MEDIUM < HIGH. Value = stored name.

    The four comparisons are written out on a rank each member carries: the engine compares
    priorities for every abnormal reading, and ``functools.total_ordering`` plus a rank looked
    up by hashing the member cost several times more.
    """

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    _rank: int

    @property
    def rank(self) -> int:
        """1 (low) to 3 (high), for sorting."""
        return self._rank

    @property
    def marker(self) -> str:
        """The message prefix of IEC 60601-1-8: ``***`` high, ``**`` medium, ``*`` low."""
        return "*" * self._rank

    def __lt__(self, other: object) -> bool:
        if other.__class__ is not Priority:
            return NotImplemented
        return self._rank < other._rank  # type: ignore[attr-defined]

    def __le__(self, other: object) -> bool:
        if other.__class__ is not Priority:
            return NotImplemented
        return self._rank <= other._rank  # type: ignore[attr-defined]

    def __gt__(self, other: object) -> bool:
        if other.__class__ is not Priority:
            return NotImplemented
        return self._rank > other._rank  # type: ignore[attr-defined]

    def __ge__(self, other: object) -> bool:
        if other.__class__ is not Priority:
            return NotImplemented
        return self._rank >= other._rank  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return self.value

    # Members are equal only to themselves (Enum defines no __eq__), so the identity hash
    # agrees with equality; Enum's own __hash__ (the name's) is a Python call on every dict
    # or set lookup of a priority (latching, timeouts, the store's and window's tables).
    __hash__ = object.__hash__


for _member, _rank in ((Priority.LOW, 1), (Priority.MEDIUM, 2), (Priority.HIGH, 3)):
    _member._rank = _rank
del _member, _rank


class AlarmKind(enum.StrEnum):
    """What raised the alarm (the ``alarms.kind`` column)."""

    LIMIT = "limit"  # a vital outside its limits (physiological)
    TECHNICAL = "technical"  # no data, battery, signal, unknown device, clock, input down
    NEWS2 = "news2"  # the patient's early warning score


class AlarmState(enum.StrEnum):
    """IEC 60601-1-8 §6.8 states as the station uses them (the ``alarms.state`` column).

    A latched alarm (condition over, alarm kept until acknowledged) is ACTIVE or AUDIO_PAUSED
    with ``condition_present`` false; see :attr:`Alarm.latched`.
    """

    ACTIVE = "active"  # sounding and shown
    AUDIO_PAUSED = "audio_paused"  # shown, silent until ``audio_paused_until``
    ACKNOWLEDGED = "acknowledged"  # shown, silent until the condition ends
    RESOLVED = "resolved"  # over; kept for the log only


OPEN_STATES = frozenset({AlarmState.ACTIVE, AlarmState.AUDIO_PAUSED, AlarmState.ACKNOWLEDGED})


class TransitionKind(enum.StrEnum):
    """What happened to an alarm (the ``alarm_events.event`` column, at most 32 characters)."""

    RAISED = "raised"
    UPDATED = "updated"  # worse value, or the condition came back while latched
    PRIORITY_RAISED = "priority_raised"  # the value entered a more severe band
    LATCHED = "latched"  # condition over, alarm kept until acknowledged
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    AUDIO_PAUSED = "audio_paused"
    AUDIO_RESUMED = "audio_resumed"  # pause expired, or a higher priority broke through
    # The escalation chain of the alarm (see escalation.py).
    PATIENT_ASKED = "patient_asked"
    PATIENT_ANSWERED = "patient_answered"
    ESCALATED = "escalated"  # roles notified: by the answer's choice, timeout, or by hand
    ESCALATION_ENDED = "escalation_ended"
    COMMENTED = "commented"  # a clinician's note on the alarm (details: text)
    NOTIFICATION_FAILED = "notification_failed"  # the outbox gave up on a notification


class Role(enum.StrEnum):
    """Who an escalation notifies."""

    PATIENT = "patient"
    NURSE = "nurse"
    DOCTOR = "doctor"
    EMS = "ems"


class Channel(enum.StrEnum):
    """How a notification travels; the sinks deliver, the alarm logic only names it."""

    STATION = "station"  # the station window (dialog, banner)
    DEVICE = "device"  # the bedside device (the patient's question)
    EMAIL = "email"
    WEBHOOK = "webhook"


class AlarmActionError(ValueError):
    """An operator action the alarm logic refuses (unknown alarm, bad actor, device ack...)."""


class UnknownAlarm(AlarmActionError, LookupError):
    """No open alarm has that key or id."""


NO_DETAILS: Mapping[str, Any] = MappingProxyType({})
"""The details of an event that has none (shared, read-only)."""


class Notification(NamedTuple):
    """A message the sinks must deliver: to one role, by one channel, about one alarm."""

    role: Role
    channel: Channel
    alarm_key: str
    priority: Priority
    reason: str  # "ask" | "patient_request" | "no_answer" | "no_acknowledgement" | "manual"
    message: str
    patient_id: str | None = None
    bed_label: str | None = None
    alarm_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the outbox row)."""
        return {
            "role": self.role.value,
            "channel": self.channel.value,
            "alarm_key": self.alarm_key,
            "alarm_id": self.alarm_id,
            "priority": self.priority.value,
            "reason": self.reason,
            "message": self.message,
            "patient_id": self.patient_id,
            "bed_label": self.bed_label,
        }


class Alarm(NamedTuple):
    """One alarm as it stands: a snapshot, never changed in place.

    ``key`` is the engine's stable condition key (scope + condition, e.g.
    ``bed:12|limit.heart_rate.high``): one open alarm per key at a time. ``alarm_id`` is the
    database id once the store has assigned one. ``priority`` is the worst reached while open
    (it never drops before the alarm resolves); ``current_priority`` is the band of the latest
    value (None inside the limits or the hysteresis margin). Values are in canonical units.
    """

    key: str
    kind: AlarmKind
    condition: str  # e.g. "heart_rate.high", "low_battery", "no_data.oxygen_saturation", "news2"
    priority: Priority
    state: AlarmState
    raised_at: datetime
    updated_at: datetime
    message: str
    condition_present: bool = True
    latching: bool = False
    current_priority: Priority | None = None
    resolved_at: datetime | None = None
    bed_label: str | None = None
    patient_id: str | None = None
    device_id: str | None = None
    vital: VitalKind | None = None
    value: float | None = None
    worst_value: float | None = None
    limit_value: float | None = None
    measured_at: datetime | None = None
    update_count: int = 0
    audio_paused_until: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    alarm_id: int | None = None

    @property
    def is_open(self) -> bool:
        """True until the alarm is resolved."""
        return self.state is not AlarmState.RESOLVED

    def with_id(self, alarm_id: int | None) -> Alarm:
        """This alarm with its database id (``_replace``, without its cost)."""
        return _tuple_new(Alarm, (*self[:-1], alarm_id))

    @property
    def latched(self) -> bool:
        """The condition is over but the alarm stays until someone acknowledges it."""
        return not self.condition_present and self.state is not AlarmState.RESOLVED

    @property
    def audible(self) -> bool:
        """True when the alarm should sound now (ACTIVE)."""
        return self.state is AlarmState.ACTIVE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back. (Each enum's ``_value_``: the
        same value as ``.value`` without the property's cost; it is stored for every alarm row
        written.)"""
        return {
            "key": self.key,
            "kind": self.kind._value_,
            "condition": self.condition,
            "priority": self.priority._value_,
            "state": self.state._value_,
            "raised_at": _iso(self.raised_at),
            "updated_at": _iso(self.updated_at),
            "message": self.message,
            "condition_present": self.condition_present,
            "latching": self.latching,
            "current_priority": _value(self.current_priority),
            "resolved_at": _iso(self.resolved_at),
            "bed_label": self.bed_label,
            "patient_id": self.patient_id,
            "device_id": self.device_id,
            "vital": _value(self.vital),
            "value": self.value,
            "worst_value": self.worst_value,
            "limit_value": self.limit_value,
            "measured_at": _iso(self.measured_at),
            "update_count": self.update_count,
            "audio_paused_until": _iso(self.audio_paused_until),
            "acknowledged_at": _iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "alarm_id": self.alarm_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alarm:
        """Rebuild an alarm from :meth:`to_dict` output (e.g. after a restart)."""
        return cls(
            key=data["key"],
            kind=AlarmKind(data["kind"]),
            condition=data["condition"],
            priority=Priority(data["priority"]),
            state=AlarmState(data["state"]),
            raised_at=_parse(data["raised_at"]),
            updated_at=_parse(data["updated_at"]),
            message=data.get("message", ""),
            condition_present=bool(data.get("condition_present", True)),
            latching=bool(data.get("latching", False)),
            current_priority=_opt(Priority, data.get("current_priority")),
            resolved_at=_parse_opt(data.get("resolved_at")),
            bed_label=data.get("bed_label"),
            patient_id=data.get("patient_id"),
            device_id=data.get("device_id"),
            vital=_opt(VitalKind, data.get("vital")),
            value=data.get("value"),
            worst_value=data.get("worst_value"),
            limit_value=data.get("limit_value"),
            measured_at=_parse_opt(data.get("measured_at")),
            update_count=int(data.get("update_count", 0)),
            audio_paused_until=_parse_opt(data.get("audio_paused_until")),
            acknowledged_at=_parse_opt(data.get("acknowledged_at")),
            acknowledged_by=data.get("acknowledged_by"),
            alarm_id=data.get("alarm_id"),
        )


class AlarmTransition(NamedTuple):
    """One auditable event of one alarm: who, when, from where, what changed.

    ``alarm`` is the snapshot after the event (the ``alarms`` row to upsert); the event itself
    is the ``alarm_events`` row (``kind``, ``at``, ``actor``, ``origin``, ``details``).
    ``notifications`` are for the outbox; ``escalation`` is the alarm's escalation chain after
    the event, when the event concerns it (store it to resume the chain after a restart).
    """

    kind: TransitionKind
    alarm: Alarm
    at: datetime
    actor: str
    origin: str
    from_state: AlarmState | None
    to_state: AlarmState
    details: Mapping[str, Any] = NO_DETAILS
    notifications: tuple[Notification, ...] = ()
    escalation: ChainState | None = None

    @property
    def event(self) -> str:
        """The stored event name."""
        return self.kind.value

    def with_alarm(self, alarm: Alarm) -> AlarmTransition:
        """This transition of ``alarm`` (e.g. the same alarm with its database id now)."""
        return _tuple_new(AlarmTransition, (self[0], alarm, *self[2:]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: one parseable line per transition for ``serve`` and the log."""
        return {
            "event": self.kind.value,
            "at": _iso(self.at),
            "actor": self.actor,
            "origin": self.origin,
            "from_state": _value(self.from_state),
            "to_state": self.to_state.value,
            "details": dict(self.details),
            "alarm": self.alarm.to_dict(),
            "notifications": [n.to_dict() for n in self.notifications],
            "escalation": None if self.escalation is None else self.escalation.to_dict(),
        }


_tuple_new = tuple.__new__
ALARM_FIELDS: tuple[str, ...] = Alarm._fields
assert ALARM_FIELDS[-1] == "alarm_id"  # with_id replaces the last value
assert AlarmTransition._fields[1] == "alarm"  # with_alarm replaces the second


def alarm_of_values(values: tuple[Any, ...]) -> Alarm:
    """An :class:`Alarm` from its field values in :data:`ALARM_FIELDS` order (a tuple of
    exactly that many: one step, where keywords would cost several microseconds)."""
    if len(values) != _ALARM_FIELD_COUNT:
        raise ValueError(f"an alarm has {_ALARM_FIELD_COUNT} fields, not {len(values)}")
    return _tuple_new(Alarm, values)


_ALARM_FIELD_COUNT = len(ALARM_FIELDS)


def check_actor(actor: str) -> str:
    """Return ``actor`` stripped; refuse an empty or over-long one (every action names a who),
    and the station's own name: a person's step stored as ``system`` would read as the
    station's and be left out of ``vitalstation audit``, which lists what people did."""
    if not isinstance(actor, str) or not actor.strip():
        raise AlarmActionError("an operator action needs the actor's name")
    actor = actor.strip()
    if len(actor) > MAX_ACTOR_CHARS:
        raise AlarmActionError(f"actor name longer than {MAX_ACTOR_CHARS} characters")
    if actor.casefold() == SYSTEM_ACTOR:
        raise AlarmActionError(
            f"{actor!r} is the station's own name for its steps; give the person's name")
    return actor


def check_origin(origin: str) -> str:
    """Return ``origin`` if it is ``cli``, ``station:<name>`` or ``rest:<device>``; else refuse."""
    if isinstance(origin, str) and len(origin) <= MAX_ACTOR_CHARS:
        if origin == ORIGIN_CLI:
            return origin
        for prefix in (STATION_ORIGIN_PREFIX, DEVICE_ORIGIN_PREFIX):
            if origin.startswith(prefix) and origin[len(prefix):].strip():
                return origin
    raise AlarmActionError(
        f"origin {origin!r} is not 'cli', 'station:<name>' or 'rest:<device>'"
    )


def is_device_origin(origin: str) -> bool:
    """True when the action came from a bedside device (``rest:<device>``), not a clinician."""
    return origin.startswith(DEVICE_ORIGIN_PREFIX)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _parse_opt(value: str | datetime | None) -> datetime | None:
    return None if value is None else _parse(value)


def _value(member: enum.Enum | None) -> Any:
    return None if member is None else member._value_


def _opt(enum_type: Any, value: Any) -> Any:
    return None if value is None else enum_type(value)
