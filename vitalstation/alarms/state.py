"""The life of one alarm: IEC 60601-1-8 §6.8 states, latching, and the event of each change.

::

    raised ──► ACTIVE ──acknowledge──► ACKNOWLEDGED ──condition ends──► RESOLVED
                │  ▲                                                      ▲
      pause_audio  │ pause expires / higher priority breaks through       │
                ▼  │                                                      │
             AUDIO_PAUSED ─────────────condition ends (non-latching)──────┘

- Non-latching: the alarm resolves by itself when its condition ends, in any state.
- Latching (HIGH by policy; never a technical alarm): when the condition ends the alarm stays
  ACTIVE or AUDIO_PAUSED with ``condition_present`` false ("latched") until an operator
  acknowledges it, which then resolves it. If the condition returns first, the same alarm
  carries on.
- An acknowledgement silences the condition *as acknowledged*: if the value then enters a more
  severe band, the alarm becomes ACTIVE again (PRIORITY_RAISED), as does an audio-paused one
  (the higher priority breaks through).
- Each method acts on this alarm only: inactivating one alarm never touches another (6.8.1).
- Every change returns the :class:`AlarmTransition` events it made, with who, when, from where.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vitalstation.alarms.model import (
    ALARM_FIELDS,
    SYSTEM_ACTOR,
    SYSTEM_ORIGIN,
    Alarm,
    AlarmActionError,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    Priority,
    TransitionKind,
)
from vitalstation.domain.vitals import VitalKind

_SNAPSHOT_VALUES = operator.attrgetter(*ALARM_FIELDS)
_tuple_new = tuple.__new__
# The members the engine's own transitions use, read once: on Python 3.11 every
# ``AlarmState.ACTIVE`` goes through the enum class's ``__getattr__`` hook (~1,000 instructions).
_ACTIVE = AlarmState.ACTIVE
_ACKNOWLEDGED = AlarmState.ACKNOWLEDGED
_RESOLVED = AlarmState.RESOLVED
_RESOLVED_VALUE = AlarmState.RESOLVED._value_
_RAISED = TransitionKind.RAISED
_UPDATED = TransitionKind.UPDATED
_PRIORITY_RAISED = TransitionKind.PRIORITY_RAISED
_LATCHED = TransitionKind.LATCHED
_RESOLVED_EVENT = TransitionKind.RESOLVED


class AlarmRecord:
    """One open alarm, mutable, owned by the engine; :meth:`snapshot` gives its value.

    ``higher_is_worse`` says which way ``worst_value`` moves (True for a high limit, NEWS2 and
    clock skew; False for a low limit, battery and signal; None when the alarm has no value).
    """

    __slots__ = (
        "acknowledged_at", "acknowledged_by", "alarm_id", "audio_paused_until",
        "condition", "condition_present", "current_priority", "device_id", "bed_label",
        "higher_is_worse", "key", "kind", "latching", "limit_value", "measured_at",
        "message", "patient_id", "priority", "raised_at", "resolved_at", "state",
        "update_count", "updated_at", "value", "vital", "worst_value",
    )

    def __init__(  # positional too: the engine opens each alarm with positional values
        self,
        key: str,
        kind: AlarmKind,
        condition: str,
        priority: Priority,
        at: datetime,
        message: str,
        latching: bool,
        higher_is_worse: bool | None = None,
        bed_label: str | None = None,
        patient_id: str | None = None,
        device_id: str | None = None,
        vital: VitalKind | None = None,
        value: float | None = None,
        limit_value: float | None = None,
        measured_at: datetime | None = None,
        state: AlarmState = AlarmState.ACTIVE,
        audio_paused_until: datetime | None = None,
    ) -> None:
        self.key = key
        self.kind = kind
        self.condition = condition
        self.priority = priority
        self.current_priority: Priority | None = priority
        self.state = state
        self.raised_at = at
        self.updated_at = at
        self.resolved_at: datetime | None = None
        self.message = message
        self.condition_present = True
        self.latching = latching
        self.higher_is_worse = higher_is_worse
        self.bed_label = bed_label
        self.patient_id = patient_id
        self.device_id = device_id
        self.vital = vital
        self.value = value
        self.worst_value = value
        self.limit_value = limit_value
        self.measured_at = measured_at
        self.update_count = 0
        self.audio_paused_until = audio_paused_until
        self.acknowledged_at: datetime | None = None
        self.acknowledged_by: str | None = None
        self.alarm_id: int | None = None

    # -- values ------------------------------------------------------------------------------

    def snapshot(self) -> Alarm:
        """The alarm as it stands now, as an immutable value (the record holds every field
        of :class:`Alarm` under the same name, so the getter gives every value in order)."""
        return _tuple_new(Alarm, _SNAPSHOT_VALUES(self))

    @classmethod
    def from_alarm(cls, alarm: Alarm, *, higher_is_worse: bool | None = None) -> AlarmRecord:
        """Rebuild an open alarm from its snapshot (restart)."""
        record = cls(
            key=alarm.key, kind=alarm.kind, condition=alarm.condition,
            priority=alarm.priority, at=alarm.raised_at, message=alarm.message,
            latching=alarm.latching, higher_is_worse=higher_is_worse,
            bed_label=alarm.bed_label, patient_id=alarm.patient_id,
            device_id=alarm.device_id, vital=alarm.vital, value=alarm.value,
            limit_value=alarm.limit_value, measured_at=alarm.measured_at,
            state=alarm.state, audio_paused_until=alarm.audio_paused_until,
        )
        record.updated_at = alarm.updated_at
        record.resolved_at = alarm.resolved_at
        record.condition_present = alarm.condition_present
        record.current_priority = alarm.current_priority
        record.worst_value = alarm.worst_value
        record.update_count = alarm.update_count
        record.acknowledged_at = alarm.acknowledged_at
        record.acknowledged_by = alarm.acknowledged_by
        record.alarm_id = alarm.alarm_id
        return record

    @property
    def is_open(self) -> bool:
        """True until resolved."""
        return self.state is not _RESOLVED

    def event(
        self,
        kind: TransitionKind,
        at: datetime,
        from_state: AlarmState | None,
        details: Mapping[str, Any] | None = None,
        *,
        actor: str = SYSTEM_ACTOR,
        origin: str = SYSTEM_ORIGIN,
    ) -> AlarmTransition:
        """An event of this alarm, with the snapshot after it."""
        return _tuple_new(AlarmTransition, (  # every field, in order: see model.py
            kind, _tuple_new(Alarm, _SNAPSHOT_VALUES(self)), at, actor, origin, from_state,
            self.state, dict(details) if details else {}, (), None,
        ))

    def _system_event(
        self, kind: TransitionKind, at: datetime, from_state: AlarmState | None,
        details: dict[str, Any],
    ) -> AlarmTransition:
        """:meth:`event` by the system, with ``details`` a new dict made for it (kept, not
        copied): the events the engine makes by itself (raised, updated, latched, resolved)."""
        return _tuple_new(AlarmTransition, (  # every field, in order: see model.py
            kind, _tuple_new(Alarm, _SNAPSHOT_VALUES(self)), at, SYSTEM_ACTOR, SYSTEM_ORIGIN,
            from_state, self.state, details, (), None,
        ))

    def raised_event(self, extra: Mapping[str, Any] | None = None) -> AlarmTransition:
        """The RAISED event (call once, right after construction); ``extra`` details follow
        the usual ones."""
        details = {
            "priority": self.priority._value_, "value": self.value,
            "limit_value": self.limit_value, "message": self.message,
        }
        if extra:
            details.update(extra)
        return self._system_event(_RAISED, self.raised_at, None, details)

    # -- the condition -----------------------------------------------------------------------

    def hold(
        self, value: float, priority_now: Priority | None, at: datetime,
        measured_at: datetime | None, message: str | None,
    ) -> bool:
        """:meth:`observe` of a reading that changes nothing worth an event (the condition
        present, ``value`` no worse than the worst, ``priority_now`` not above the alarm's):
        counts the update and returns True; returns False, changing nothing, for any other
        reading (call :meth:`observe` then). An open alarm's every abnormal reading comes here.
        """
        worst = self.worst_value
        higher_is_worse = self.higher_is_worse
        if (
            not self.condition_present or worst is None or higher_is_worse is None
            or (value > worst if higher_is_worse else value < worst)
            or (priority_now is not None and priority_now._rank > self.priority._rank)
        ):
            return False
        self.update_count += 1
        self.updated_at = at
        self.current_priority = priority_now
        if measured_at is not None:
            self.measured_at = measured_at
        if message is not None:
            self.message = message
        self.value = value
        return True

    def observe(
        self,
        value: float | None,
        *,
        priority_now: Priority | None,
        at: datetime,
        latching_for: Mapping[Priority, bool],
        limit_value: float | None = None,
        measured_at: datetime | None = None,
        message: str | None = None,
    ) -> list[AlarmTransition]:
        """The condition holds (``priority_now``: the band of ``value``; None within hysteresis).

        Counts an update; reports a more severe band (PRIORITY_RAISED, breaking through an
        audio pause or an acknowledgement), a worse value (UPDATED) or the condition's return
        while latched (UPDATED). Plain updates of the same condition make no event: 1,000
        abnormal readings are one alarm with ``update_count`` 999.
        """
        self.update_count += 1
        self.updated_at = at
        self.current_priority = priority_now
        if measured_at is not None:
            self.measured_at = measured_at
        if message is not None:
            self.message = message
        details: dict[str, Any] = {}
        if value is not None:
            self.value = value
            if self._worse(value):
                details["worst_value"] = [self.worst_value, value]
                self.worst_value = value
        if not self.condition_present:
            self.condition_present = True
            details["condition_returned"] = True
        from_state = self.state
        if priority_now is not None and priority_now._rank > self.priority._rank:
            details["priority"] = [self.priority._value_, priority_now._value_]
            self.priority = priority_now
            self.latching = latching_for[priority_now]
            if limit_value is not None:
                details["limit_value"] = [self.limit_value, limit_value]
                self.limit_value = limit_value
            if self.state is not _ACTIVE:
                details["state"] = [self.state._value_, _ACTIVE._value_]
                self.state = _ACTIVE
                self.audio_paused_until = None
                self.acknowledged_at = None
                self.acknowledged_by = None
            details["value"] = value
            return [self._system_event(_PRIORITY_RAISED, at, from_state, details)]
        if details:
            details["value"] = value
            return [self._system_event(_UPDATED, at, from_state, details)]
        return []

    def condition_ended(
        self, at: datetime, reason: str = "condition ended", value: float | None = None
    ) -> list[AlarmTransition]:
        """The condition is over: resolve, or latch when latching and not yet acknowledged.
        (``reason`` and ``value`` may be given by position: the engine does, per alarm.)"""
        if not self.condition_present or self.state is _RESOLVED:
            return []
        if value is not None:
            self.value = value
        self.current_priority = None
        self.updated_at = at
        if self.latching and self.state is not _ACKNOWLEDGED:
            self.condition_present = False
            return [self._system_event(_LATCHED, at, self.state, {
                "reason": reason, "value": self.value,
            })]
        return self._resolve(at, reason)

    def _resolve(
        self, at: datetime, reason: str, *, actor: str = SYSTEM_ACTOR, origin: str = SYSTEM_ORIGIN
    ) -> list[AlarmTransition]:
        from_state = self.state
        self.condition_present = False
        self.state = _RESOLVED
        self.resolved_at = at
        self.updated_at = at
        self.audio_paused_until = None
        return [_tuple_new(AlarmTransition, (  # every field, in order: see model.py
            _RESOLVED_EVENT, _tuple_new(Alarm, _SNAPSHOT_VALUES(self)), at, actor,
            origin, from_state, _RESOLVED,
            {"reason": reason, "state": [from_state._value_, _RESOLVED_VALUE]}, (), None,
        ))]

    def force_resolve(
        self, at: datetime, reason: str, *, actor: str = SYSTEM_ACTOR, origin: str = SYSTEM_ORIGIN
    ) -> list[AlarmTransition]:
        """Resolve whatever the latching (the device was forgotten, the input came back)."""
        if not self.is_open:
            return []
        return self._resolve(at, reason, actor=actor, origin=origin)

    # -- operator actions ------------------------------------------------------------------

    def acknowledge(self, at: datetime, *, actor: str, origin: str) -> list[AlarmTransition]:
        """ACTIVE / AUDIO_PAUSED → ACKNOWLEDGED; a latched alarm then resolves. Idempotent."""
        if not self.is_open:
            raise AlarmActionError(f"alarm {self.key} is already resolved")
        if self.state is AlarmState.ACKNOWLEDGED:
            return []
        from_state = self.state
        self.state = AlarmState.ACKNOWLEDGED
        self.acknowledged_at = at
        self.acknowledged_by = actor
        self.audio_paused_until = None
        self.updated_at = at
        events = [self.event(
            TransitionKind.ACKNOWLEDGED, at, from_state,
            {"state": [from_state.value, AlarmState.ACKNOWLEDGED.value]},
            actor=actor, origin=origin,
        )]
        if not self.condition_present:
            events += self._resolve(at, "latched alarm acknowledged", actor=actor, origin=origin)
        return events

    def pause_audio(
        self, until: datetime, at: datetime, *, actor: str, origin: str
    ) -> list[AlarmTransition]:
        """ACTIVE → AUDIO_PAUSED until ``until`` (or extend a pause); nothing if acknowledged."""
        if not self.is_open:
            raise AlarmActionError(f"alarm {self.key} is already resolved")
        if self.state is AlarmState.ACKNOWLEDGED:
            return []
        from_state = self.state
        self.state = AlarmState.AUDIO_PAUSED
        self.audio_paused_until = until
        self.updated_at = at
        return [self.event(
            TransitionKind.AUDIO_PAUSED, at, from_state,
            {"state": [from_state.value, AlarmState.AUDIO_PAUSED.value],
             "until": until.isoformat()},
            actor=actor, origin=origin,
        )]

    def resume_audio(self, at: datetime, reason: str) -> list[AlarmTransition]:
        """AUDIO_PAUSED → ACTIVE (the pause expired, or a higher priority broke through)."""
        if self.state is not AlarmState.AUDIO_PAUSED:
            return []
        self.state = AlarmState.ACTIVE
        self.audio_paused_until = None
        self.updated_at = at
        return [self.event(
            TransitionKind.AUDIO_RESUMED, at, AlarmState.AUDIO_PAUSED,
            {"state": [AlarmState.AUDIO_PAUSED.value, AlarmState.ACTIVE.value],
             "reason": reason},
        )]

    def _worse(self, value: float) -> bool:
        if self.higher_is_worse is None or self.worst_value is None:
            return self.worst_value is None and self.higher_is_worse is not None
        if self.higher_is_worse:
            return value > self.worst_value
        return value < self.worst_value
