"""The seed's two-stage escalation, done right: a state machine on an injected clock.

The seed asked the patient, then crashed on every answer and every timeout (a signature
mismatch), so EMS was never called; its 15-minute timeout was the same for every level and
ran from a cron job. Here, for each alarm at or above ``EscalationPolicy.min_priority``:

1. **Ask the patient** (PATIENT_ASKED, notifications to the patient's channels). The answer —
   wants the doctor, the nurse, EMS, all of them, or declines — is recorded whoever brings it
   (the nurse at the station, or the bedside device with its key).
2. **Notify the chosen roles** (PATIENT_ANSWERED with the notifications). The sinks deliver;
   this module only says who and by which channel.

With no answer within the priority's timeout (HIGH 2 min, MEDIUM 5 min, LOW 15 min) the chain
climbs the ladder nurse → doctor → EMS, one rung per timeout, notifying every role up to the
rung not yet notified (ESCALATED, reason ``no_answer`` then ``no_acknowledgement``). After a
patient's answer the clock restarts: a clinician must acknowledge within the timeout, or the
chain climbs from the highest rung notified. A decline is recorded and honoured: nobody is
called on the patient's behalf, but if no clinician acknowledges within the timeout the ward
nurse is told (``declined_cap``) — an unanswered alarm never stays unseen — and it stops there.
A clinician's acknowledgement ends the chain (ESCALATION_ENDED), as does the alarm resolving.

The state of a chain is a plain value (:class:`ChainState`, ``to_dict``/``from_dict``), with
absolute due times: a chain restored after a restart resumes with its remaining time, and
steps that fell due while the station was down are taken at the first tick, in order.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

from vitalstation.alarms.model import (
    NO_DETAILS,
    SYSTEM_ACTOR,
    SYSTEM_ORIGIN,
    AlarmActionError,
    Channel,
    Notification,
    Priority,
    Role,
    TransitionKind,
    UnknownAlarm,
)
from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock


class PatientAnswer(enum.StrEnum):
    """What the patient wants (the seed's approve_doctor / _nurse / _ems / _all / decline)."""

    DOCTOR = "doctor"
    NURSE = "nurse"
    EMS = "ems"
    ALL = "all"
    DECLINED = "declined"

    @classmethod
    def parse(cls, text: str) -> PatientAnswer:
        """Accept our names and the seed's action names (``approve_doctor``, ``decline``)."""
        name = text.strip().lower()
        for prefix in ("approve_", "wants_"):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name == "decline":
            name = "declined"
        try:
            return cls(name)
        except ValueError:
            raise AlarmActionError(
                f"{text!r} is not an answer; use one of {', '.join(a.value for a in cls)}"
            ) from None


ANSWER_ROLES: Mapping[PatientAnswer, tuple[Role, ...]] = MappingProxyType({
    PatientAnswer.DOCTOR: (Role.DOCTOR,),
    PatientAnswer.NURSE: (Role.NURSE,),
    PatientAnswer.EMS: (Role.EMS,),
    PatientAnswer.ALL: (Role.NURSE, Role.DOCTOR, Role.EMS),
    PatientAnswer.DECLINED: (),
})


class ChainStage(enum.StrEnum):
    """Where a chain stands."""

    ASKING_PATIENT = "asking_patient"  # stage 1: waiting for the patient's answer
    AWAITING_ACK = "awaiting_acknowledgement"  # stage 2: roles notified, waiting for a clinician
    DECLINED = "declined"  # the patient declined; escalation capped at ``declined_cap``
    ENDED = "ended"


DEFAULT_ANSWER_TIMEOUT: Mapping[Priority, timedelta] = MappingProxyType({
    Priority.HIGH: timedelta(minutes=2),
    Priority.MEDIUM: timedelta(minutes=5),
    Priority.LOW: timedelta(minutes=15),  # the seed's only timeout
})

DEFAULT_CHANNELS: Mapping[Role, tuple[Channel, ...]] = MappingProxyType({
    Role.PATIENT: (Channel.DEVICE, Channel.STATION),
    Role.NURSE: (Channel.STATION, Channel.EMAIL),
    Role.DOCTOR: (Channel.EMAIL, Channel.WEBHOOK),
    Role.EMS: (Channel.WEBHOOK,),
})


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """Which alarms escalate, how fast, to whom and by which channels.

    ``min_priority`` MEDIUM by default: a LOW alarm (e.g. a nurse-level band) is shown at the
    station but does not page anyone or ask the patient; set LOW to escalate everything as the
    seed did.
    """

    min_priority: Priority = Priority.MEDIUM
    answer_timeout: Mapping[Priority, timedelta] = field(
        default_factory=lambda: DEFAULT_ANSWER_TIMEOUT
    )
    ladder: tuple[Role, ...] = (Role.NURSE, Role.DOCTOR, Role.EMS)
    channels: Mapping[Role, tuple[Channel, ...]] = field(
        default_factory=lambda: DEFAULT_CHANNELS
    )
    declined_cap: Role | None = Role.NURSE

    def __post_init__(self) -> None:
        if Role.PATIENT in self.ladder or len(set(self.ladder)) != len(self.ladder):
            raise ValueError("the ladder lists clinical roles, each once")
        if self.declined_cap is not None and self.declined_cap not in self.ladder:
            raise ValueError("declined_cap must be a rung of the ladder")
        for priority in Priority:
            if self.answer_timeout.get(priority, timedelta(0)) <= timedelta(0):
                raise ValueError(f"answer timeout for {priority.value} must be positive")

    def applies_to(self, priority: Priority) -> bool:
        """True when an alarm of ``priority`` gets a chain."""
        return priority >= self.min_priority

    def timeout(self, priority: Priority) -> timedelta:
        """How long the patient (then the clinicians) have before the next rung."""
        return self.answer_timeout[priority]


def escalation_policy(settings: Settings, base: EscalationPolicy | None = None
                      ) -> EscalationPolicy:
    """``base`` (the default policy) with the answer timeouts of ``[alarms]``
    (``escalation_high_s``, ``escalation_medium_s``, ``escalation_low_s``; checked on load)."""
    alarms = settings.alarms
    return dataclasses.replace(base or EscalationPolicy(), answer_timeout=MappingProxyType({
        Priority.HIGH: timedelta(seconds=alarms.escalation_high_s),
        Priority.MEDIUM: timedelta(seconds=alarms.escalation_medium_s),
        Priority.LOW: timedelta(seconds=alarms.escalation_low_s),
    }))


class ChainState(NamedTuple):
    """One alarm's escalation chain: a plain, serialisable value (a named tuple, as the
    values of model.py; change one with ``_replace``).

    ``due_at`` is the absolute time of the next automatic step (None: nothing more will
    happen by itself). ``notified`` lists the clinical roles told so far, in order.
    """

    alarm_key: str
    priority: Priority
    stage: ChainStage
    started_at: datetime
    due_at: datetime | None
    message: str = ""
    patient_id: str | None = None
    bed_label: str | None = None
    notified: tuple[Role, ...] = ()
    answer: PatientAnswer | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    ended_by: str | None = None

    @property
    def active(self) -> bool:
        """True until the chain ended."""
        return self.stage is not ChainStage.ENDED

    def remaining(self, now: datetime) -> timedelta | None:
        """Time left before the next automatic step (zero when overdue), None when none."""
        if self.due_at is None:
            return None
        return max(self.due_at - now, timedelta(0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back."""
        return {
            "alarm_key": self.alarm_key,
            "priority": self.priority._value_,
            "stage": self.stage._value_,
            "started_at": self.started_at.isoformat(),
            "due_at": _iso(self.due_at),
            "message": self.message,
            "patient_id": self.patient_id,
            "bed_label": self.bed_label,
            "notified": [r._value_ for r in self.notified],
            "answer": None if self.answer is None else self.answer._value_,
            "answered_at": _iso(self.answered_at),
            "answered_by": self.answered_by,
            "ended_at": _iso(self.ended_at),
            "end_reason": self.end_reason,
            "ended_by": self.ended_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChainState:
        """Rebuild a chain from :meth:`to_dict` output."""
        answer = data.get("answer")
        return cls(
            alarm_key=data["alarm_key"],
            priority=Priority(data["priority"]),
            stage=ChainStage(data["stage"]),
            started_at=_parse(data["started_at"]),
            due_at=_parse_opt(data.get("due_at")),
            message=data.get("message", ""),
            patient_id=data.get("patient_id"),
            bed_label=data.get("bed_label"),
            notified=tuple(Role(r) for r in data.get("notified", ())),
            answer=None if answer is None else PatientAnswer(answer),
            answered_at=_parse_opt(data.get("answered_at")),
            answered_by=data.get("answered_by"),
            ended_at=_parse_opt(data.get("ended_at")),
            end_reason=data.get("end_reason"),
            ended_by=data.get("ended_by"),
        )


class EscalationEvent(NamedTuple):
    """One auditable step of a chain, with the chain after it and what to deliver."""

    kind: TransitionKind
    chain: ChainState
    at: datetime
    actor: str
    origin: str
    details: Mapping[str, Any] = NO_DETAILS
    notifications: tuple[Notification, ...] = ()


class Escalator:
    """Every alarm's chain; pure logic, driven by calls and :meth:`tick`.

    Not thread-safe: the engine that owns it serialises calls.
    """

    def __init__(self, policy: EscalationPolicy | None = None, *, clock: Clock) -> None:
        self.policy = policy or EscalationPolicy()
        self._clock = clock
        self._chains: dict[str, ChainState] = {}
        # (now, priority, policy, due time, its ISO text) of the last chain started: the
        # chains a batch starts share its ``now``, and most their priority (see start).
        self._last_due: tuple[Any, ...] = (None, None, None, None, None)

    # -- queries -----------------------------------------------------------------------------

    def chain(self, alarm_key: str) -> ChainState | None:
        """The active chain of an alarm, or None."""
        return self._chains.get(alarm_key)

    def snapshot(self) -> tuple[ChainState, ...]:
        """Every active chain (store them, or the ``escalation`` of each event, to restart)."""
        return tuple(self._chains.values())

    def restore(self, chains: Iterable[ChainState]) -> None:
        """Take up chains saved before a restart; their due times are absolute."""
        for chain in chains:
            if chain.active:
                self._chains[chain.alarm_key] = chain

    # -- steps -------------------------------------------------------------------------------

    def start(
        self,
        alarm_key: str,
        priority: Priority,
        message: str,
        patient_id: str | None = None,
        bed_label: str | None = None,
        now: datetime | None = None,
    ) -> list[EscalationEvent]:
        """Stage 1 for a newly raised alarm: ask the patient. Nothing if below the level.
        (Every parameter may be given by position: the engine does, once per alarm raised.)"""
        policy = self.policy
        # policy.applies_to(priority) and policy.timeout(priority), without their calls (a
        # chain per alarm raised)
        if priority._rank < policy.min_priority._rank or alarm_key in self._chains:
            return []
        now = now or self._clock()
        last = self._last_due
        if last[0] is now and last[1] is priority and last[2] is policy:
            due_at, due_text = last[3], last[4]  # the same values as below, made once
        else:
            due_at = now + policy.answer_timeout[priority]
            due_text = due_at.isoformat()
            self._last_due = (now, priority, policy, due_at, due_text)
        chain = _tuple_new(ChainState, (  # every field, in order
            alarm_key, priority, _ASKING_PATIENT, now, due_at, message, patient_id, bed_label,
            (), None, None, None, None, None, None,
        ))
        self._chains[alarm_key] = chain
        return [_tuple_new(EscalationEvent, (  # every field, in order
            _PATIENT_ASKED, chain, now, SYSTEM_ACTOR, SYSTEM_ORIGIN,
            {"stage": [None, _ASKING_PATIENT_VALUE], "due_at": due_text},
            self._notify(chain, _ASK_ROLES, "ask"),
        ))]

    def adopt(
        self,
        alarm_key: str,
        priority: Priority,
        *,
        message: str,
        patient_id: str | None = None,
        bed_label: str | None = None,
        now: datetime | None = None,
    ) -> ChainState:
        """A chain for an alarm a clinician escalates by hand (no chain yet, e.g. below the
        level): no patient question, straight to waiting for an acknowledgement."""
        existing = self._chains.get(alarm_key)
        if existing is not None:
            return existing
        now = now or self._clock()
        chain = ChainState(
            alarm_key=alarm_key, priority=priority, stage=ChainStage.AWAITING_ACK,
            started_at=now, due_at=None, message=message, patient_id=patient_id,
            bed_label=bed_label,
        )
        self._chains[alarm_key] = chain
        return chain

    def answer(
        self,
        alarm_key: str,
        answer: PatientAnswer | str,
        *,
        actor: str,
        origin: str,
        now: datetime | None = None,
    ) -> list[EscalationEvent]:
        """Record the patient's answer and notify the roles it names (stage 2).

        Accepted at any point until the chain ends (a later answer adds roles; a decline stops
        further calls beyond ``declined_cap``).
        """
        chain = self._require(alarm_key)
        choice = answer if isinstance(answer, PatientAnswer) else PatientAnswer.parse(answer)
        now = now or self._clock()
        to_notify = tuple(r for r in ANSWER_ROLES[choice] if r not in chain.notified)
        notified = chain.notified + to_notify
        if choice is PatientAnswer.DECLINED:
            stage = ChainStage.DECLINED
        else:
            stage = ChainStage.AWAITING_ACK
        updated = chain._replace(
            stage=stage, notified=notified, answer=choice, answered_at=now, answered_by=actor,
        )
        updated = updated._replace(due_at=self._next_due(updated, now))
        self._chains[alarm_key] = updated
        return [self._event(
            TransitionKind.PATIENT_ANSWERED, updated, now, actor, origin,
            {"answer": choice.value, "roles": [r.value for r in to_notify],
             "stage": [chain.stage.value, stage.value], "due_at": _iso(updated.due_at)},
            self._notify(updated, to_notify, "patient_request"),
        )]

    def escalate(
        self,
        alarm_key: str,
        roles: Iterable[Role],
        *,
        actor: str,
        origin: str,
        now: datetime | None = None,
    ) -> list[EscalationEvent]:
        """A clinician escalates by hand: notify ``roles`` now."""
        chain = self._require(alarm_key)
        wanted = tuple(Role(r) for r in roles)
        if not wanted or Role.PATIENT in wanted:
            raise AlarmActionError("name the clinical roles to notify (nurse, doctor, ems)")
        now = now or self._clock()
        to_notify = tuple(r for r in wanted if r not in chain.notified)
        stage = (
            ChainStage.AWAITING_ACK if chain.stage is ChainStage.ASKING_PATIENT else chain.stage
        )
        updated = chain._replace(stage=stage, notified=chain.notified + to_notify)
        updated = updated._replace(due_at=self._next_due(updated, now))
        self._chains[alarm_key] = updated
        return [self._event(
            TransitionKind.ESCALATED, updated, now, actor, origin,
            {"reason": "manual", "roles": [r.value for r in to_notify],
             "stage": [chain.stage.value, stage.value], "due_at": _iso(updated.due_at)},
            self._notify(updated, to_notify, "manual"),
        )]

    def end(
        self,
        alarm_key: str,
        reason: str,
        actor: str = SYSTEM_ACTOR,
        origin: str = SYSTEM_ORIGIN,
        now: datetime | None = None,
    ) -> list[EscalationEvent]:
        """End the chain (a clinician acknowledged, or the alarm resolved); nothing if none.
        (Every parameter may be given by position: the engine does, once per alarm resolved.)"""
        chain = self._chains.pop(alarm_key, None)
        if chain is None:
            return []
        now = now or self._clock()
        ended = _tuple_new(ChainState, (  # chain._replace(stage=ENDED, due_at=None, ended_*)
            chain[0], chain[1], _ENDED, chain[3], None, *chain[5:12], now, reason, actor,
        ))
        return [_tuple_new(EscalationEvent, (  # every field, in order
            _ESCALATION_ENDED, ended, now, actor, origin,
            {"reason": reason, "stage": [chain.stage._value_, _ENDED_VALUE]}, (),
        ))]

    def priority_changed(
        self, alarm_key: str, priority: Priority, *, now: datetime | None = None
    ) -> ChainState | None:
        """A higher priority shortens the wait to its own timeout; returns the chain, if any."""
        chain = self._chains.get(alarm_key)
        if chain is None or priority <= chain.priority:
            return chain
        now = now or self._clock()
        due = chain.due_at
        if due is not None:
            due = min(due, now + self.policy.timeout(priority))
        updated = chain._replace(priority=priority, due_at=due)
        self._chains[alarm_key] = updated
        return updated

    def tick(self, now: datetime | None = None) -> list[EscalationEvent]:
        """Take every automatic step that is due at ``now``, oldest first."""
        now = now or self._clock()
        events: list[EscalationEvent] = []
        due = sorted(
            (c for c in self._chains.values() if c.due_at is not None and c.due_at <= now),
            key=lambda c: (c.due_at, c.alarm_key),
        )
        for chain in due:
            while chain.due_at is not None and chain.due_at <= now:
                chain, event = self._climb(chain, now)
                if event is not None:
                    events.append(event)
            self._chains[chain.alarm_key] = chain
        return events

    # -- internals ---------------------------------------------------------------------------

    def _require(self, alarm_key: str) -> ChainState:
        chain = self._chains.get(alarm_key)
        if chain is None:
            raise UnknownAlarm(f"no escalation in progress for alarm {alarm_key}")
        return chain

    def _top_rung(self, chain: ChainState) -> int:
        """The highest ladder index this chain may reach by itself."""
        ladder = self.policy.ladder
        if chain.stage is ChainStage.DECLINED:
            cap = self.policy.declined_cap
            return -1 if cap is None else ladder.index(cap)
        return len(ladder) - 1

    def _current_rung(self, chain: ChainState) -> int:
        ladder = self.policy.ladder
        return max((ladder.index(r) for r in chain.notified if r in ladder), default=-1)

    def _next_due(self, chain: ChainState, now: datetime) -> datetime | None:
        """When the next rung falls due from ``now``, or None at the top."""
        if self._current_rung(chain) >= self._top_rung(chain):
            return None
        return now + self.policy.timeout(chain.priority)

    def _climb(
        self, chain: ChainState, now: datetime
    ) -> tuple[ChainState, EscalationEvent | None]:
        """The automatic step due at ``chain.due_at``, taken ``now``: notify up to the next rung.

        The next step is scheduled from the due time, not from ``now``, so a late tick (or a
        restart) keeps the timeline.
        """
        assert chain.due_at is not None
        due = chain.due_at
        target = self._current_rung(chain) + 1
        if target > self._top_rung(chain):
            return chain._replace(due_at=None), None
        ladder = self.policy.ladder
        to_notify = tuple(r for r in ladder[: target + 1] if r not in chain.notified)
        reason = "no_answer" if chain.stage is ChainStage.ASKING_PATIENT else (
            "no_acknowledgement"
        )
        stage = (
            ChainStage.AWAITING_ACK if chain.stage is ChainStage.ASKING_PATIENT else chain.stage
        )
        updated = chain._replace(stage=stage, notified=chain.notified + to_notify)
        next_due = None if target >= self._top_rung(updated) else (
            due + self.policy.timeout(chain.priority)
        )
        updated = updated._replace(due_at=next_due)
        return updated, self._event(
            TransitionKind.ESCALATED, updated, now, SYSTEM_ACTOR, SYSTEM_ORIGIN,
            {"reason": reason, "roles": [r.value for r in to_notify], "rung": ladder[target].value,
             "scheduled_at": due.isoformat(), "stage": [chain.stage.value, stage.value],
             "due_at": _iso(next_due)},
            self._notify(updated, to_notify, reason),
        )

    def _notify(
        self, chain: ChainState, roles: Iterable[Role], reason: str
    ) -> tuple[Notification, ...]:
        channels = self.policy.channels
        made = []
        for role in roles:
            for channel in channels.get(role, ()):
                made.append(_tuple_new(Notification, (  # every field, in order
                    role, channel, chain.alarm_key, chain.priority, reason, chain.message,
                    chain.patient_id, chain.bed_label, None,
                )))
        return tuple(made)

    @staticmethod
    def _event(
        kind: TransitionKind,
        chain: ChainState,
        at: datetime,
        actor: str,
        origin: str,
        details: dict[str, Any],
        notifications: tuple[Notification, ...] = (),
    ) -> EscalationEvent:
        return _tuple_new(EscalationEvent, (kind, chain, at, actor, origin, details, notifications))


# A named tuple from all its values, without its __new__'s Python frame (hot paths above).
_tuple_new = tuple.__new__
# Members read once (on Python 3.11 an enum class's members are found through its
# ``__getattr__`` hook, ~1,000 instructions each time).
_PATIENT_ASKED = TransitionKind.PATIENT_ASKED
_ESCALATION_ENDED = TransitionKind.ESCALATION_ENDED
_ASKING_PATIENT = ChainStage.ASKING_PATIENT
_ASKING_PATIENT_VALUE = ChainStage.ASKING_PATIENT._value_
_ENDED = ChainStage.ENDED
_ENDED_VALUE = ChainStage.ENDED._value_
_ASK_ROLES = (Role.PATIENT,)
# The positions the hot paths above build these values by.
assert ChainState._fields[:5] == ("alarm_key", "priority", "stage", "started_at", "due_at")
assert ChainState._fields[12:] == ("ended_at", "end_reason", "ended_by")
assert len(ChainState._fields) == 15 and len(EscalationEvent._fields) == 7


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _parse_opt(value: str | datetime | None) -> datetime | None:
    return None if value is None else _parse(value)

