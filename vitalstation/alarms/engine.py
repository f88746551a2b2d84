"""The alarm engine: stored readings and operator actions in, alarm transitions out.

One engine per station, fed on one thread (the pipeline's): :meth:`AlarmEngine.process_stored` with
each committed batch, :meth:`AlarmEngine.tick` about once a second (pause expiry, alarm delays,
no-data, inputs down, escalation timeouts), and the operator actions from the window, the CLI
and the REST receiver. Every call returns the :class:`AlarmTransition` events it caused, in
order, for the caller to store, show, print and deliver. The engine does no I/O, starts no
thread and reads time only from the injected clock, so the same inputs at the same clock
give the same transitions.

**One alarm per condition.** A condition is identified by its key, ``<scope>|<condition>``:
the scope is ``bed:<label>`` for a reading attributed to a bed (with or without a patient),
``patient:<id>`` for a patient with no bed, ``device:<id>`` for an unassigned or unknown device
(and for a device's technical conditions, which follow the device), ``input:<name>`` for an
input. While a condition lasts, later readings update its one alarm; 1,000 abnormal readings
make one alarm with ``update_count`` 999, and no event unless the value gets worse or the
priority rises.

**Live data only.** A reading measured more than ``live_window`` before now (a back-fill, a
replayed stream) is stored by the pipeline but raises no limit alarm here: it describes a past
that may not even be this bed's present patient. Within a vital, a reading older than the
latest one seen is ignored for the same reason.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from vitalstation.alarms.escalation import (
    ChainState,
    EscalationEvent,
    EscalationPolicy,
    Escalator,
    PatientAnswer,
)
from vitalstation.alarms.limits import (
    DEFAULT_PROFILE,
    AlarmProfile,
    Direction,
    Limit,
    LimitBreach,
    LimitOverride,
    VitalLimits,
    _OverrideBook,
    get_profile,
)
from vitalstation.alarms.model import (
    SYSTEM_ACTOR,
    SYSTEM_ORIGIN,
    Alarm,
    AlarmActionError,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    Notification,
    Priority,
    Role,
    TransitionKind,
    UnknownAlarm,
    check_actor,
    check_origin,
    is_device_origin,
)
from vitalstation.alarms.news2 import (
    MEASURED,
    PARAMETER_OF_VITAL,
    RISK_PRIORITY,
    Consciousness,
    News2Inputs,
    News2Policy,
    News2Result,
    Observed,
    Parameter,
    Risk,
    SpO2Scale,
    compute_news2,
)
from vitalstation.alarms.state import AlarmRecord
from vitalstation.alarms.technical import (
    TechnicalCondition,
    TechnicalPolicy,
    battery_priority,
    battery_recovered,
    signal_poor,
    signal_recovered,
)
from vitalstation.domain.clock import Clock
from vitalstation.domain.readings import DataSource, Measurement, Reading
from vitalstation.domain.vitals import CANONICAL_UNIT, VitalKind

_ZERO = timedelta(0)
MAX_COMMENT_CHARS = 2000

AlarmRef = str | int
"""An alarm as operators name it: its key (str) or its database id (int)."""


class Attribution(enum.StrEnum):
    """Whom a reading belongs to; the same values as the pipeline's ``Attribution``."""

    PATIENT = "patient"
    BED = "bed"
    UNASSIGNED = "unassigned"
    UNKNOWN_DEVICE = "unknown_device"


_ATTRIBUTIONS: dict[object, Attribution] = {a.value: a for a in Attribution}


@dataclass(frozen=True, slots=True)
class AttributedReading:
    """What the engine needs of a stored reading: the reading and whom it belongs to.

    The pipeline builds it from a ``StoredReading`` with :meth:`from_reading`, passing the
    result's attribution, patient and bed (and ``new_kinds``, so that a re-sent vital is not
    counted twice). Values are canonical (``Measurement.value``).
    """

    device_id: str
    measured_at: datetime
    received_at: datetime
    measurements: tuple[Measurement, ...]
    attribution: Attribution = Attribution.PATIENT
    patient_id: str | None = None
    bed_label: str | None = None
    battery_level: float | None = None
    signal_quality: float | None = None
    data_source: DataSource = DataSource.DEVICE

    @classmethod
    def from_reading(
        cls,
        reading: Reading,
        *,
        attribution: str,
        patient_id: str | None = None,
        bed_label: str | None = None,
        kinds: Collection[VitalKind] | None = None,
    ) -> AttributedReading:
        """Wrap a stored reading; ``kinds`` keeps only those vitals (e.g. ``new_kinds``)."""
        measurements = reading.measurements
        if kinds is not None:
            for measurement in measurements:
                if measurement.kind not in kinds:  # rare: copy only when one is left out
                    measurements = tuple(m for m in measurements if m.kind in kinds)
                    break
        if cls is not AttributedReading:  # a subclass gets its own __init__
            return cls(
                reading.device_id, reading.measured_at, reading.received_at, measurements,
                _ATTRIBUTIONS.get(attribution) or Attribution(str(attribution)), patient_id,
                bed_label, reading.battery_level, reading.signal_quality, reading.data_source,
            )
        # One per stored reading: set through the slots, not the frozen dataclass's __init__
        # (object.__setattr__ per field). No __post_init__ is skipped.
        item = object.__new__(AttributedReading)
        _SET_DEVICE(item, reading.device_id)
        _SET_MEASURED(item, reading.measured_at)
        _SET_RECEIVED(item, reading.received_at)
        _SET_MEASUREMENTS(item, measurements)
        _SET_ATTRIBUTION(item, _ATTRIBUTIONS.get(attribution) or Attribution(str(attribution)))
        _SET_PATIENT(item, patient_id)
        _SET_BED(item, bed_label)
        _SET_BATTERY(item, reading.battery_level)
        _SET_SIGNAL(item, reading.signal_quality)
        _SET_SOURCE(item, reading.data_source)
        return item

    @property
    def scope(self) -> str:
        """Where its limit and NEWS2 alarms belong: ``bed:…``, ``patient:…`` or ``device:…``."""
        if self.attribution in (Attribution.PATIENT, Attribution.BED):
            if self.bed_label:
                return f"bed:{self.bed_label}"
            if self.patient_id:
                return f"patient:{self.patient_id}"
        return f"device:{self.device_id}"


assert tuple(f.name for f in dataclasses.fields(AttributedReading)) == (
    "device_id", "measured_at", "received_at", "measurements", "attribution", "patient_id",
    "bed_label", "battery_level", "signal_quality", "data_source",
), "the setters below follow the fields' order"
(_SET_DEVICE, _SET_MEASURED, _SET_RECEIVED, _SET_MEASUREMENTS, _SET_ATTRIBUTION, _SET_PATIENT,
 _SET_BED, _SET_BATTERY, _SET_SIGNAL, _SET_SOURCE) = (
    getattr(AttributedReading, f.name).__set__ for f in dataclasses.fields(AttributedReading)
)


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    """The responsible organisation's choices (IEC 60601-1-8 leaves these to it).

    - ``latching``: priorities whose limit and NEWS2 alarms latch (HIGH, as Dräger and Mindray
      do). Technical alarms never latch.
    - ``audio_pause`` (2 min, Dräger's) and ``max_audio_pause``: longer pauses are refused.
    - ``high_priority_delay_cap``: a HIGH condition is never held back longer than this by a
      vital's alarm delay (10 s: the IEC 60601-2-27 heart-rate alarm latency).
    - ``live_window``: readings measured longer ago raise no limit alarm.
    - ``escalation``: None disables the two-stage escalation; ``news2``: None disables NEWS2.
    - ``refuse_device_actions``: a bedside device (origin ``rest:…``) may answer for the patient
      but not acknowledge or pause alarms: those are a clinician's.
    """

    latching: frozenset[Priority] = frozenset({Priority.HIGH})
    audio_pause: timedelta = timedelta(minutes=2)
    max_audio_pause: timedelta = timedelta(minutes=5)
    high_priority_delay_cap: timedelta = timedelta(seconds=10)
    live_window: timedelta = timedelta(minutes=15)
    technical: TechnicalPolicy = field(default_factory=TechnicalPolicy)
    news2: News2Policy | None = field(default_factory=News2Policy)
    escalation: EscalationPolicy | None = field(default_factory=EscalationPolicy)
    escalate_kinds: frozenset[AlarmKind] = frozenset({AlarmKind.LIMIT, AlarmKind.NEWS2})
    refuse_device_actions: bool = True

    def __post_init__(self) -> None:
        if not _ZERO < self.audio_pause <= self.max_audio_pause:
            raise ValueError("audio_pause must be positive and at most max_audio_pause")
        if self.high_priority_delay_cap < _ZERO:
            raise ValueError("high_priority_delay_cap must not be negative")


@dataclass(frozen=True, slots=True)
class AudioPause:
    """A pause of every sounding alarm, until ``until``.

    ``levels`` maps each scope that had a paused alarm (``bed:12``) to the highest priority
    paused there. Until the pause ends, a new alarm in one of those scopes starts paused if its
    priority is not higher; a higher one breaks through, and a new alarm anywhere else sounds
    (pausing bed 12 must not silence a new asystole in bed 14).
    """

    until: datetime
    levels: Mapping[str, Priority]
    at: datetime
    actor: str
    origin: str

    def holds(self, scope: str, priority: Priority, now: datetime) -> bool | None:
        """True: a new alarm starts paused; False: it breaks through; None: not concerned."""
        level = self.levels.get(scope)
        if level is None or self.until <= now:
            return None
        return priority <= level

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "until": self.until.isoformat(),
            "levels": {scope: p.value for scope, p in self.levels.items()},
            "at": self.at.isoformat(), "actor": self.actor, "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AudioPause:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            until=datetime.fromisoformat(data["until"]),
            levels={scope: Priority(p) for scope, p in data["levels"].items()},
            at=datetime.fromisoformat(data["at"]), actor=data["actor"], origin=data["origin"],
        )


@dataclass(frozen=True, slots=True)
class Discharge:
    """What a discharge undid: the overrides dropped (for the audit) and the alarms resolved."""

    overrides: tuple[LimitOverride, ...]
    transitions: list[AlarmTransition]


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """What the engine must get back after a restart: open alarms, chains, the audio pause.

    Overrides, NEWS2 entries and watched devices live in the database and are handed back
    through :meth:`AlarmEngine.set_override`, :meth:`AlarmEngine.enter_news2` and
    :meth:`AlarmEngine.watch_device`; latest values and pending delays rebuild from new data.
    """

    alarms: tuple[Alarm, ...] = ()
    chains: tuple[ChainState, ...] = ()
    audio_pause: AudioPause | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": 1,
            "alarms": [a.to_dict() for a in self.alarms],
            "chains": [c.to_dict() for c in self.chains],
            "audio_pause": None if self.audio_pause is None else self.audio_pause.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineSnapshot:
        """Rebuild from :meth:`to_dict` output."""
        pause = data.get("audio_pause")
        return cls(
            alarms=tuple(Alarm.from_dict(a) for a in data.get("alarms", ())),
            chains=tuple(ChainState.from_dict(c) for c in data.get("chains", ())),
            audio_pause=None if pause is None else AudioPause.from_dict(pause),
        )


VITAL_LABELS: Mapping[VitalKind, str] = {
    VitalKind.HEART_RATE: "Heart rate",
    VitalKind.SYSTOLIC_BP: "Systolic BP",
    VitalKind.DIASTOLIC_BP: "Diastolic BP",
    VitalKind.TEMPERATURE: "Temperature",
    VitalKind.RESPIRATORY_RATE: "Respiratory rate",
    VitalKind.SPO2: "SpO2",
    VitalKind.GLUCOSE: "Glucose",
    VitalKind.WEIGHT: "Weight",
}

_NEWS2_THRESHOLD = {Risk.HIGH: 7.0, Risk.MEDIUM: 5.0, Risk.LOW_MEDIUM: 3.0}


class _Pending:
    """A breach waiting out its vital's alarm delay."""

    __slots__ = ("breach", "priority", "since", "worst")

    def __init__(self, since: datetime, breach: LimitBreach, value: float) -> None:
        self.since = since
        self.breach = breach
        self.priority = breach.priority
        self.worst = value


class _VitalTrack:
    """The latest value of one vital in one scope, and its pending breaches."""

    __slots__ = ("bed_label", "calm_high", "calm_limits", "calm_low", "checks", "conditions",
                 "device_id", "high_key", "key", "keys", "kind", "low_key", "measured_at",
                 "message", "message_of", "news2_parameter", "open_sides", "patient_id", "pending",
                 "scope", "value")

    def __init__(self, scope: str, kind: VitalKind) -> None:
        self.scope = scope
        self.kind = kind
        self.key = (scope, kind)
        self.news2_parameter = _PARAMETER_OF_VITAL.get(kind)
        self.keys = {d: _limit_key(scope, kind, d) for d in Direction}
        self.low_key = self.keys[Direction.LOW]
        self.high_key = self.keys[Direction.HIGH]
        # How many of its two limit alarms are open (AlarmEngine._sync_sides keeps it): a calm
        # reading is told by this and the band, without looking both keys up.
        self.open_sides = 0
        # Each side's alarm condition, e.g. "heart_rate.high".
        self.conditions = {d: f"{kind.value}.{d.value}" for d in Direction}
        # The limits last applied and the open interval where no limit of theirs is breached.
        self.calm_limits: VitalLimits | None | object = _UNSET
        self.calm_low = self.calm_high = 0.0
        self.checks: tuple[_Check, ...] = ()  # calm_limits' limits, as _first_breach reads them
        self.value = 0.0
        self.measured_at: datetime | None = None
        self.patient_id: str | None = None
        self.bed_label: str | None = None
        self.device_id: str | None = None
        self.pending: dict[Direction, _Pending] = {}
        # The message of the last breach evaluated and what it was made of (value, breach):
        # an open alarm's every reading renews its message, mostly to the same text.
        self.message = ""
        self.message_of: tuple[float, LimitBreach] | None = None

    def breach_message(self, direction: Direction, breach: LimitBreach) -> str:
        """:func:`_limit_message` for the current value, made again only when it changes."""
        made_of = (self.value, breach)
        if made_of != self.message_of:
            self.message = _limit_message(self.kind, direction, self.value, breach)
            self.message_of = made_of
        return self.message


class _DeviceKeys:
    """The alarm keys of one device's technical conditions, built once."""

    __slots__ = ("battery", "clock", "no_data", "no_data_of", "signal", "unknown")

    def __init__(self, device_id: str) -> None:
        self.unknown = _device_key(device_id, TechnicalCondition.UNKNOWN_DEVICE)
        self.battery = _device_key(device_id, TechnicalCondition.LOW_BATTERY)
        self.signal = _device_key(device_id, TechnicalCondition.POOR_SIGNAL)
        self.clock = _device_key(device_id, TechnicalCondition.CLOCK_AHEAD)
        self.no_data = _device_key(device_id, TechnicalCondition.NO_DATA)
        self.no_data_of = {kind: _no_data_key(device_id, kind) for kind in VitalKind}


class _DeviceWatch:
    """A device expected to keep sending: when it and each of its vitals were last heard."""

    __slots__ = ("bed_label", "device_id", "last_seen", "patient_id", "vitals_last_seen")

    def __init__(self, device_id: str, last_seen: datetime) -> None:
        self.device_id = device_id
        self.last_seen = last_seen
        self.bed_label: str | None = None
        self.patient_id: str | None = None
        self.vitals_last_seen: dict[VitalKind, datetime] = {}


class _Lane:
    """A device's readings in a bed, as the fast path takes them: whom they belonged to last
    (a reading for someone else takes the full path), the scope of their alarms, the device's
    watch and its vitals' tracks (filled as they are met)."""

    __slots__ = ("latest", "news2", "scope", "tracks", "watch", "whom")

    def __init__(self, attribution: Attribution, patient_id: str | None,
                 bed_label: str | None, scope: str, watch: _DeviceWatch) -> None:
        # Attribution, patient and bed, compared with each reading's in one step (a tuple
        # compares item by item).
        self.whom = (attribution, patient_id, bed_label)
        self.scope = scope
        self.watch = watch
        self.tracks: dict[VitalKind, _VitalTrack] = {}
        # The patient's NEWS2 values (found at its first reading; lanes are dropped whenever
        # a patient's values are: discharge, restore), and each vital's value among them by
        # vital (the same objects as in ``news2.measured``, which are never replaced).
        self.news2: _PatientNews2 | None = None
        self.latest: dict[VitalKind, _Latest] = {}


# The fast path on (tests compare it with the full path by switching it off).
_FAST_LANES = True
_NO_LANES: dict[str, _Lane] = {}  # the lanes looked in when the fast path is off
_FROM_DEVICE = DataSource.DEVICE
_IN_A_BED = frozenset({Attribution.PATIENT, Attribution.BED})

StoredRow = tuple[Any, Any, str | None, str | None, Collection[VitalKind] | None]
"""A stored reading for :meth:`AlarmEngine.process_readings`: ``(reading, attribution,
patient_id, bed_label, kinds)``; the reading a domain ``Reading`` or an AttributedReading."""


class StoredWhom(Protocol):
    """Whom a stored reading belongs to, as the pipeline's ``ReadingResult`` says it (no
    attribution: an unknown device), and the vitals stored new."""

    @property
    def attribution(self) -> Any: ...
    @property
    def patient_id(self) -> str | None: ...
    @property
    def bed_label(self) -> str | None: ...
    @property
    def new_kinds(self) -> Collection[VitalKind] | None: ...


class StoredItem(Protocol):
    """A stored reading as the pipeline hands it to subscribers (its ``StoredReading``)."""

    @property
    def reading(self) -> Any: ...
    @property
    def result(self) -> StoredWhom: ...


class _Whom:
    """:class:`StoredWhom` of a row given as a tuple (tests and benches) or of an
    AttributedReading."""

    __slots__ = ("attribution", "bed_label", "new_kinds", "patient_id")

    def __init__(self, attribution: Any, patient_id: str | None, bed_label: str | None,
                 new_kinds: Collection[VitalKind] | None) -> None:
        self.attribution = attribution
        self.patient_id = patient_id
        self.bed_label = bed_label
        self.new_kinds = new_kinds


class _Stored:
    """:class:`StoredItem` of a row given as a tuple, or of an AttributedReading."""

    __slots__ = ("reading", "result")

    def __init__(self, reading: Any, result: _Whom) -> None:
        self.reading = reading
        self.result = result


class _Latest:
    """A measured NEWS2 parameter's latest value and time, updated in place: a patient's
    every reading of it changes these two slots instead of making a new value."""

    __slots__ = ("at", "value")

    def __init__(self, value: float, at: datetime) -> None:
        self.value = value
        self.at = at

    def keep(self, value: float, at: datetime) -> None:
        """Take ``value`` unless what is kept was measured later (a reading sent late)."""
        if at >= self.at:
            self.value = value
            self.at = at


@dataclass(slots=True)
class _PatientNews2:
    measured: dict[Parameter, _Latest] = field(default_factory=dict)
    consciousness: Observed | None = None
    on_oxygen: Observed | None = None
    scale: SpO2Scale = SpO2Scale.SCALE_1
    bed_label: str | None = None

    def inputs(self) -> News2Inputs:
        """The values as NEWS2 scores them (made when the patient is scored)."""
        return News2Inputs(
            {param: Observed(latest.value, latest.at) for param, latest in self.measured.items()},
            self.consciousness, self.on_oxygen, self.scale,
        )


@dataclass(slots=True)
class _InputHealth:
    down_since: datetime | None = None
    detail: str = ""


class AlarmEngine:
    """Limit, technical and NEWS2 alarms, their states, and their escalation.

    ``profile`` is an :class:`AlarmProfile` or a profile name (``adult-ward``, ``inhealth``,
    ``bedside-monitor``). Not thread-safe: call it from one thread (the pipeline's), or
    serialise calls.
    """

    def __init__(
        self,
        profile: AlarmProfile | str = DEFAULT_PROFILE,
        *,
        clock: Clock,
        policy: AlarmPolicy | None = None,
    ) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.policy = policy or AlarmPolicy()
        self._clock = clock
        self._open: dict[str, AlarmRecord] = {}
        self._by_id: dict[int, str] = {}
        self._tracks: dict[tuple[str, VitalKind], _VitalTrack] = {}
        self._track_of_key: dict[str, _VitalTrack] = {}  # limit alarm key -> its vital's track
        self._pending_tracks: set[tuple[str, VitalKind]] = set()
        self._devices: dict[str, _DeviceWatch] = {}
        self._device_keys: dict[str, _DeviceKeys] = {}
        # The fast path's lanes by device, and the open alarms keyed ``device:<id>|...`` by
        # device id (a device with one takes the full path).
        self._lanes: dict[str, _Lane] = {}
        self._tech_open: dict[str, int] = {}
        self._inputs: dict[str, _InputHealth] = {}
        self._overrides = _OverrideBook()
        self._profile_limits_of: tuple[object, dict[VitalKind, VitalLimits]] = (None, {})
        self._news2: dict[str, _PatientNews2] = {}
        self._audio_pause: AudioPause | None = None
        self._escalator = (
            Escalator(self.policy.escalation, clock=clock)
            if self.policy.escalation is not None else None
        )
        self._latching_for = {
            kind: {p: kind is not AlarmKind.TECHNICAL and p in self.policy.latching
                   for p in Priority}
            for kind in AlarmKind
        }

    @property
    def clock(self) -> Clock:
        """The engine's clock (the time stamped on every transition)."""
        return self._clock

    # == settings saved in Settings > Alarms, applied at once ===============================

    def reconfigure(self, profile: AlarmProfile, escalation: EscalationPolicy) -> None:
        """Judge from now on by ``profile`` and escalate by ``escalation`` (the admin saved new
        limits, delays or timeouts). Open alarms and chains stay as they are; each vital's next
        reading meets the new limits, each chain's next step the new timeouts. Each attribute is
        replaced in one assignment, so a reading judged meanwhile sees the old or the new
        settings, never half of each. Escalation stays off if the engine was built without it.
        """
        self.profile = profile
        if self._escalator is not None:
            self.policy = dataclasses.replace(self.policy, escalation=escalation)
            self._escalator.policy = escalation

    # == readings ===========================================================================

    def process(self, readings: Iterable[AttributedReading]) -> list[AlarmTransition]:
        """Evaluate a committed batch of readings, in order; the transitions they cause.

        NEWS2 is scored once per patient per batch, after the batch's limit and technical
        transitions, from the latest values the batch brought.
        """
        return self._process([
            _Stored(r, _Whom(r.attribution, r.patient_id, r.bed_label, None)) for r in readings
        ])

    def process_stored(
        self, stored: Sequence[StoredItem], raised_by: dict[int, int] | None = None
    ) -> list[AlarmTransition]:
        """:meth:`process` for the pipeline's stored readings as it hands them over (each its
        ``reading`` and its ``result``: attribution, patient, bed, vitals stored new): a calm
        reading is evaluated without anything made for it (no row, no
        :class:`AttributedReading`). A vital not stored new (a re-sent one) is left out.

        ``raised_by``, when given, is filled with ``{index: alarms that reading raised}`` (a
        NEWS2 alarm counts for the last reading that brought the patient a value): the REST
        receiver's ``alerts_triggered`` of each reading.
        """
        return self._process(stored, raised_by)

    def process_readings(
        self, rows: Sequence[StoredRow], raised_by: dict[int, int] | None = None
    ) -> list[AlarmTransition]:
        """:meth:`process_stored` for readings given as ``(reading, attribution, patient_id,
        bed_label, kinds)`` rows (see :meth:`AttributedReading.from_reading`)."""
        return self._process(
            [_Stored(row[0], _Whom(row[1], row[2], row[3], row[4])) for row in rows], raised_by
        )

    def _process(
        self, stored: Sequence[StoredItem], raised_by: dict[int, int] | None = None
    ) -> list[AlarmTransition]:
        """The readings of a batch, in order.

        A reading of a device whose lane is known (the device in a bed, its last reading for
        the same bed, patient and attribution went through the full path) takes the fast path
        when nothing technical can come of it: sent by the device, live, not dated ahead of its
        receipt, battery and signal fine, no technical alarm open on the device, each vital's
        track known. It then does what the full path does with such a reading (the device is
        heard, each vital's track takes the value and is evaluated unless it is calm, the
        NEWS2 values are kept) without the full path's calls; anything else goes the full way.
        """
        now = self._clock()
        policy = self.policy
        live_from = now - policy.live_window  # measured earlier: not live
        news2 = policy.news2 is not None
        tech = policy.technical
        cadence = tech.no_data_after
        low_battery = tech.low_battery_below
        poor_signal = tech.poor_signal_below
        fast = _FAST_LANES and tech.clock_ahead_after >= _ZERO
        lanes = self._lanes
        tech_open = self._tech_open
        open_ = self._open
        tracks_by_key = self._tracks
        pending_tracks = self._pending_tracks
        by_patient = self._overrides.by_patient
        profile_limits = self._profile_limits()
        news2_states = self._news2
        out: list[AlarmTransition] = []
        # patient -> the row that last brought a value (its device is named in the alarm)
        rescore: dict[str, int] = {}
        lane_of = lanes.get if fast else _NO_LANES.get
        for index, item in enumerate(stored):
            source = item.reading
            result = item.result
            attribution = result.attribution
            patient_id = result.patient_id
            bed_label = result.bed_label
            kinds = result.new_kinds
            device_id = source.device_id
            lane = lane_of(device_id)
            measured_at = source.measured_at
            # The lane's attribution is compared by value: the pipeline's own Attribution, a
            # plain string or this module's member, all convert by value (below, if needed).
            if (
                lane is not None and lane.whom == (attribution, patient_id, bed_label)
                and live_from <= measured_at <= source.received_at
                and source.data_source is _FROM_DEVICE and device_id not in tech_open
                and ((level := source.battery_level) is None or not level < low_battery)
                and ((quality := source.signal_quality) is None or not quality < poor_signal)
            ):
                measurements = source.measurements
                lane_tracks = lane.tracks
                for measurement in measurements:  # every vital kept and its track known?
                    kind = measurement.kind
                    if kinds is not None and kind not in kinds:
                        break
                    if kind not in lane_tracks:
                        track = tracks_by_key.get((lane.scope, kind))
                        if track is None:
                            break
                        lane_tracks[kind] = track
                else:
                    watch = lane.watch
                    watch.last_seen = now
                    watch.bed_label, watch.patient_id = bed_label, patient_id
                    state: _PatientNews2 | None = None
                    for measurement in measurements:
                        kind = measurement.kind
                        if kind in cadence:
                            watch.vitals_last_seen[kind] = now
                        track = lane_tracks[kind]
                        if track.measured_at is None or measured_at >= track.measured_at:
                            value = track.value = measurement.value
                            track.measured_at = measured_at
                            track.patient_id = patient_id
                            track.bed_label = bed_label
                            track.device_id = device_id
                            if (by_patient and (per_patient := by_patient.get(patient_id))
                                    and (override := per_patient.get(kind)) is not None):
                                limits = override.limits
                            else:
                                limits = profile_limits.get(kind)
                            if limits is not track.calm_limits:
                                track.calm_limits = limits
                                track.calm_low, track.calm_high = _calm_band(limits)
                                track.checks = _checks_of(limits)
                            if not (track.calm_low < value < track.calm_high
                                    and not track.pending and not track.open_sides):
                                # An open alarm's next abnormal reading: what _evaluate does
                                # for it when it only counts an update (nothing pending, the
                                # other side closed), without the call; anything else is
                                # left to _evaluate (hold changes nothing when it refuses).
                                if (
                                    not track.pending and limits is not None
                                    and (breach := _first_breach(track.checks, value))
                                    is not None
                                ):
                                    if breach.direction is _HIGH:
                                        side, other = track.high_key, track.low_key
                                    else:
                                        side, other = track.low_key, track.high_key
                                    record = open_.get(side)
                                    if (
                                        record is not None and other not in open_
                                        and record.hold(
                                            value, breach.priority, now, measured_at,
                                            track.breach_message(breach.direction, breach),
                                        )
                                    ):
                                        pending_tracks.discard(track.key)
                                        made = None
                                    else:
                                        made = self._evaluate(track, limits, now)
                                else:
                                    made = self._evaluate(track, limits, now)
                                if made:
                                    out += made
                                    if raised_by is not None:
                                        _count_raised(raised_by, index, made)
                        latest = lane.latest.get(kind)
                        if latest is not None:  # a NEWS2 value met before on this lane
                            state = lane.news2
                            if measured_at >= latest.at:  # _Latest.keep, inline
                                latest.value = measurement.value
                                latest.at = measured_at
                        elif ((param := track.news2_parameter) is not None and news2
                              and patient_id is not None):
                            if state is None:
                                state = lane.news2
                                if state is None:  # the patient's, kept while the lane lives
                                    state = news2_states.get(patient_id)
                                    if state is None:
                                        state = news2_states[patient_id] = _PatientNews2()
                                    lane.news2 = state
                            latest = state.measured.get(param)
                            if latest is None:
                                latest = state.measured[param] = _Latest(
                                    measurement.value, measured_at
                                )
                            elif measured_at >= latest.at:  # _Latest.keep, inline
                                latest.value = measurement.value
                                latest.at = measured_at
                            lane.latest[kind] = latest
                    if state is not None:
                        state.bed_label = bed_label or state.bed_label
                        rescore[patient_id] = index  # type: ignore[index]
                    continue
            # The full path.
            if attribution.__class__ is not Attribution:
                attribution = (
                    _ATTRIBUTIONS.get(attribution) or Attribution(str(attribution))
                    if attribution else Attribution.UNKNOWN_DEVICE  # none: nobody registered it
                )
            if kinds is None and isinstance(source, AttributedReading):
                reading = source
            else:
                reading = AttributedReading.from_reading(
                    source, attribution=attribution, patient_id=patient_id,
                    bed_label=bed_label, kinds=kinds,
                )
            made = self._on_reading(reading, now, live_from)
            if made:
                out += made
                if raised_by is not None:
                    _count_raised(raised_by, index, made)
            if news2 and reading.patient_id is not None and self._news2_on_reading(reading):
                rescore[reading.patient_id] = index
            if fast and attribution in _IN_A_BED:
                watch = self._devices.get(device_id)
                if watch is not None:
                    lanes[device_id] = _Lane(attribution, patient_id, bed_label,
                                             reading.scope, watch)
        complete = len(MEASURED)
        for patient_id, index in rescore.items():
            state = news2_states[patient_id]
            if len(state.measured) < complete:
                continue  # _evaluate_news2's first test, without the call: nothing to score
            made = self._evaluate_news2(
                patient_id, state, now, device_id=stored[index].reading.device_id
            )
            if made:
                out += made
                if raised_by is not None:
                    _count_raised(raised_by, index, made)
        return out

    def tick(self, now: datetime | None = None) -> list[AlarmTransition]:
        """Let time pass: expire audio pauses, raise delayed conditions, detect no data and
        inputs down, take due escalation steps. Call about once a second."""
        now = now or self._clock()
        out: list[AlarmTransition] = []
        for record in list(self._open.values()):
            until = record.audio_paused_until
            if record.state is AlarmState.AUDIO_PAUSED and until is not None and until <= now:
                out += record.resume_audio(now, "pause expired")
        if self._audio_pause is not None and self._audio_pause.until <= now:
            self._audio_pause = None
        for track_key in sorted(self._pending_tracks):
            track = self._tracks[track_key]
            limits = self._limits_for(track.patient_id, track.kind)
            for direction, pending in list(track.pending.items()):
                if limits is None:
                    del track.pending[direction]
                elif now - pending.since >= self._delay_for(limits, pending.priority):
                    del track.pending[direction]
                    out += self._raise_limit(track, direction, pending.breach, now, pending)
            if not track.pending:
                self._pending_tracks.discard(track_key)
        out += self._check_no_data(now)
        for name in sorted(self._inputs):
            out += self._check_input(name, now)
        if self._escalator is not None:
            for event in self._escalator.tick(now):
                record = self._open.get(event.chain.alarm_key)
                if record is not None:
                    out += self._wrap([event], record)
        return out

    # == operator actions =====================================================================

    def acknowledge(self, alarm: AlarmRef, *, actor: str, origin: str) -> list[AlarmTransition]:
        """A clinician acknowledges one alarm (and only that one); ends its escalation chain.

        A latched alarm resolves; an alarm already acknowledged gives no event.
        """
        actor, origin = self._clinician(actor, origin, "acknowledge")
        record = self._find(alarm)
        now = self._clock()
        out = record.acknowledge(now, actor=actor, origin=origin)
        if out and self._escalator is not None:
            out += self._wrap(
                self._escalator.end(record.key, reason="acknowledged", actor=actor,
                                    origin=origin, now=now),
                record,
            )
        return self._settle(record, out, now)

    def pause_audio(
        self,
        alarm: AlarmRef | None = None,
        *,
        actor: str,
        origin: str,
        duration: timedelta | None = None,
    ) -> list[AlarmTransition]:
        """Pause one alarm's audio, or every sounding alarm's (``alarm=None``).

        For ``duration`` (default ``policy.audio_pause``, at most ``policy.max_audio_pause``).
        A pause of all also holds back, until it ends, new alarms in the same beds of the same
        or lower priority (see :class:`AudioPause`); a higher one breaks through, as does a
        paused alarm whose priority rises.
        """
        actor, origin = self._clinician(actor, origin, "pause")
        duration = self.policy.audio_pause if duration is None else duration
        if not _ZERO < duration <= self.policy.max_audio_pause:
            raise AlarmActionError(
                f"an audio pause lasts more than 0 and at most "
                f"{int(self.policy.max_audio_pause.total_seconds())} s"
            )
        now = self._clock()
        until = now + duration
        if alarm is not None:
            return self._find(alarm).pause_audio(until, now, actor=actor, origin=origin)
        targets = [r for r in self._open.values()
                   if r.state in (AlarmState.ACTIVE, AlarmState.AUDIO_PAUSED)]
        if not targets:
            return []
        levels: dict[str, Priority] = {}
        for record in targets:
            scope = _scope_of(record.key)
            levels[scope] = max(levels.get(scope, record.priority), record.priority)
        self._audio_pause = AudioPause(
            until=until, levels=levels, at=now, actor=actor, origin=origin
        )
        out: list[AlarmTransition] = []
        for record in targets:
            out += record.pause_audio(until, now, actor=actor, origin=origin)
        return out

    def record_patient_answer(
        self, alarm: AlarmRef, answer: PatientAnswer | str, *, actor: str, origin: str
    ) -> list[AlarmTransition]:
        """The patient's answer to stage 1, brought by the nurse or the bedside device."""
        actor, origin = check_actor(actor), check_origin(origin)
        escalator = self._require_escalator()
        record = self._find(alarm)
        events = escalator.answer(record.key, answer, actor=actor, origin=origin,
                                  now=self._clock())
        return self._wrap(events, record.snapshot())

    def escalate(
        self, alarm: AlarmRef, roles: Iterable[Role | str], *, actor: str, origin: str
    ) -> list[AlarmTransition]:
        """A clinician notifies ``roles`` now (starting a chain if the alarm had none)."""
        actor, origin = self._clinician(actor, origin, "escalate")
        escalator = self._require_escalator()
        record = self._find(alarm)
        now = self._clock()
        wanted = [_parse_enum(Role, r, "role") for r in roles]
        if not wanted or Role.PATIENT in wanted:
            raise AlarmActionError("name the clinical roles to notify (nurse, doctor, ems)")
        if escalator.chain(record.key) is None:
            escalator.adopt(
                record.key, record.priority, message=record.message,
                patient_id=record.patient_id, bed_label=record.bed_label, now=now,
            )
        events = escalator.escalate(record.key, wanted, actor=actor, origin=origin, now=now)
        return self._wrap(events, record.snapshot())

    def comment(self, alarm: AlarmRef, text: str, *, actor: str, origin: str
                ) -> list[AlarmTransition]:
        """A clinician's note on one alarm (the audit trail keeps it); the state is unchanged."""
        actor, origin = self._clinician(actor, origin, "comment on")
        if not isinstance(text, str) or not text.strip():
            raise AlarmActionError("a comment needs some text")
        if len(text) > MAX_COMMENT_CHARS:
            raise AlarmActionError(f"a comment is at most {MAX_COMMENT_CHARS} characters")
        record = self._find(alarm)
        return [record.event(
            TransitionKind.COMMENTED, self._clock(), record.state, {"text": text.strip()},
            actor=actor, origin=origin,
        )]

    # == notifications ========================================================================

    def notification_failed(
        self, alarm: AlarmRef | None, *, channel: str, recipient: str, error: str
    ) -> list[AlarmTransition]:
        """The outbox gave up on a notification: a NOTIFICATION_FAILED event on its alarm (if
        still open) and a MEDIUM technical alarm for the channel, so the nurse sees it."""
        now = self._clock()
        details = {"channel": channel, "recipient": recipient, "error": error[:500]}
        out: list[AlarmTransition] = []
        record = None
        if alarm is not None:
            try:
                record = self._find(alarm)
            except UnknownAlarm:
                record = None
        if record is not None:
            out.append(record.event(
                TransitionKind.NOTIFICATION_FAILED, now, record.state, details
            ))
        key = _notify_key(channel)
        existing = self._open.get(key)
        if existing is not None:
            out.append(existing.event(TransitionKind.UPDATED, now, existing.state, details))
            return out
        where = "" if record is None else f" ({record.message})"
        out += self._raise(
            now, key=key, kind=AlarmKind.TECHNICAL,
            condition=TechnicalCondition.NOTIFICATION_FAILED.value,
            priority=Priority.MEDIUM,
            message=f"Notification by {channel} to {recipient} failed: {error[:200]}{where}",
            higher_is_worse=None,
            bed_label=None if record is None else record.bed_label,
            details=details,
        )
        return out

    def notification_delivered(self, channel: str) -> list[AlarmTransition]:
        """A channel delivered again: its NOTIFICATION_FAILED technical alarm resolves."""
        record = self._open.get(_notify_key(channel))
        if record is None:
            return []
        now = self._clock()
        return self._settle(record, record.condition_ended(now, reason="delivered"), now)

    # == inputs and devices =================================================================

    def report_input(self, name: str, *, up: bool, detail: str = "") -> list[AlarmTransition]:
        """The runtime's word on an input's health; down for too long is a technical alarm."""
        now = self._clock()
        health = self._inputs.setdefault(name, _InputHealth())
        if up:
            health.down_since = None
            record = self._open.get(_input_key(name))
            if record is None:
                return []
            return self._settle(record, record.condition_ended(now, reason="input up"), now)
        if health.down_since is None:
            health.down_since = now
        health.detail = detail
        return self._check_input(name, now)

    def watch_device(
        self,
        device_id: str,
        *,
        bed_label: str | None = None,
        patient_id: str | None = None,
        vitals: Iterable[VitalKind] = (),
        last_seen: datetime | None = None,
    ) -> None:
        """Expect ``device_id`` to send ``vitals`` (at startup: assigned devices and their
        last stored reading). Devices in a bed are also watched from their first reading."""
        seen = last_seen or self._clock()
        watch = self._devices.get(device_id)
        if watch is None:
            watch = self._devices[device_id] = _DeviceWatch(device_id, seen)
        watch.bed_label, watch.patient_id = bed_label, patient_id
        for kind in vitals:
            if kind in self.policy.technical.no_data_after:
                watch.vitals_last_seen.setdefault(kind, seen)

    def forget_device(self, device_id: str, *, reason: str = "device unassigned"
                      ) -> list[AlarmTransition]:
        """Stop expecting a device (unassigned, retired, registered from unknown): resolves
        its technical alarms."""
        self._devices.pop(device_id, None)
        self._lanes.pop(device_id, None)
        now = self._clock()
        prefix = f"device:{device_id}|"
        out: list[AlarmTransition] = []
        for key in [k for k, r in self._open.items()
                    if k.startswith(prefix) and r.kind is AlarmKind.TECHNICAL]:
            record = self._open[key]
            out += self._settle(record, record.force_resolve(now, reason), now)
        return out

    # == per-patient limits and NEWS2 entries =================================================

    def set_override(self, override: LimitOverride) -> list[AlarmTransition]:
        """Replace one vital's limits for one patient; re-evaluates the latest value."""
        self._overrides.set(override)
        now = self._clock()
        out: list[AlarmTransition] = []
        for track in list(self._tracks.values()):
            if track.patient_id == override.patient_id and track.kind is override.kind:
                out += self._evaluate(track, override.limits, now)
        return out

    def remove_override(
        self, patient_id: str, kind: VitalKind
    ) -> tuple[LimitOverride | None, list[AlarmTransition]]:
        """Go back to the profile's limits for one patient's vital; re-evaluates the latest
        value. Returns the override removed (None if there was none) and the transitions."""
        removed = self._overrides.remove(patient_id, kind)
        if removed is None:
            return None, []
        now = self._clock()
        out: list[AlarmTransition] = []
        limits = self._limits_for(patient_id, kind)
        for track in list(self._tracks.values()):
            if track.patient_id == patient_id and track.kind is kind:
                out += self._evaluate(track, limits, now)
        return removed, out

    def overrides(self, patient_id: str) -> tuple[LimitOverride, ...]:
        """The overrides in force for a patient."""
        return self._overrides.of(patient_id)

    def limits_for(self, patient_id: str | None, kind: VitalKind) -> VitalLimits | None:
        """The limits in force for a patient's vital (override, else the profile's)."""
        return self._limits_for(patient_id, kind)

    def discharge(
        self, patient_id: str, *, actor: str = SYSTEM_ACTOR, origin: str = SYSTEM_ORIGIN
    ) -> Discharge:
        """The patient left: drop their overrides, NEWS2 entries and latest values, and resolve
        their limit and NEWS2 alarms (with their chains), so that the next patient in the bed
        starts clean. Their device's technical alarms stay: the device is still there."""
        if (actor, origin) != (SYSTEM_ACTOR, SYSTEM_ORIGIN):
            actor, origin = check_actor(actor), check_origin(origin)
        now = self._clock()
        dropped = self._overrides.drop(patient_id)
        self._news2.pop(patient_id, None)
        self._lanes.clear()  # they hold tracks
        for key in [k for k, t in self._tracks.items() if t.patient_id == patient_id]:
            track = self._tracks.pop(key)
            del self._track_of_key[track.low_key], self._track_of_key[track.high_key]
            self._pending_tracks.discard(key)
        out: list[AlarmTransition] = []
        for record in [r for r in self._open.values()
                       if r.patient_id == patient_id and r.kind is not AlarmKind.TECHNICAL]:
            out += self._settle(
                record,
                record.force_resolve(now, "patient discharged", actor=actor, origin=origin),
                now,
            )
        return Discharge(dropped, out)

    def enter_news2(
        self,
        patient_id: str,
        *,
        consciousness: Consciousness | str | None = None,
        on_oxygen: bool | None = None,
        scale: SpO2Scale | int | None = None,
        at: datetime | None = None,
        bed_label: str | None = None,
    ) -> list[AlarmTransition]:
        """A clinician's NEWS2 entries (ACVPU, air/oxygen, SpO2 scale); re-scores the patient."""
        now = self._clock()
        when = at or now
        level = None if consciousness is None else _parse_enum(
            Consciousness, consciousness, "consciousness (ACVPU)"
        )
        chosen_scale = None if scale is None else _parse_enum(SpO2Scale, scale, "SpO2 scale")
        state = self._news2.setdefault(patient_id, _PatientNews2())
        if level is not None:
            state.consciousness = Observed(level, when)
        if on_oxygen is not None:
            state.on_oxygen = Observed(bool(on_oxygen), when)
        if chosen_scale is not None:
            state.scale = chosen_scale
        if bed_label is not None:
            state.bed_label = bed_label
        return self._evaluate_news2(patient_id, state, now, device_id=None)

    def restore_news2_entry(
        self,
        patient_id: str,
        *,
        at: datetime,
        consciousness: Consciousness | str | None = None,
        on_oxygen: bool | None = None,
        scale: SpO2Scale | int | None = None,
    ) -> None:
        """Take up an entry made before a restart, at its own time (so it goes stale as it
        would have), without re-scoring: the patient is scored with their next reading."""
        state = self._news2.setdefault(patient_id, _PatientNews2())
        if consciousness is not None:
            state.consciousness = Observed(
                _parse_enum(Consciousness, consciousness, "consciousness (ACVPU)"), at
            )
        if on_oxygen is not None:
            state.on_oxygen = Observed(bool(on_oxygen), at)
        if scale is not None:
            state.scale = _parse_enum(SpO2Scale, scale, "SpO2 scale")

    def news2(self, patient_id: str) -> News2Result | None:
        """The patient's NEWS2 now (None when nothing is known of them)."""
        state = self._news2.get(patient_id)
        if state is None or self.policy.news2 is None:
            return None
        return compute_news2(state.inputs(), now=self._clock(), policy=self.policy.news2)

    # == queries, ids, restart ================================================================

    def active_alarms(
        self, *, bed_label: str | None = None, patient_id: str | None = None
    ) -> list[Alarm]:
        """Open alarms, highest priority first, then oldest first."""
        found = [
            r.snapshot() for r in self._open.values()
            if (bed_label is None or r.bed_label == bed_label)
            and (patient_id is None or r.patient_id == patient_id)
        ]
        return sorted(found, key=lambda a: (-a.priority.rank, a.raised_at, a.key))

    def known_patients(self) -> set[str]:
        """Every patient the engine holds anything of (alarms, overrides, NEWS2, values)."""
        found = {r.patient_id for r in self._open.values() if r.patient_id is not None}
        found |= set(self._overrides.by_patient) | set(self._news2)
        found |= {t.patient_id for t in self._tracks.values() if t.patient_id is not None}
        return found

    def alarm(self, alarm: AlarmRef) -> Alarm | None:
        """An open alarm by key or database id, or None."""
        try:
            return self._find(alarm).snapshot()
        except UnknownAlarm:
            return None

    def escalation(self, alarm: AlarmRef) -> ChainState | None:
        """The alarm's escalation chain in progress, or None."""
        if self._escalator is None:
            return None
        try:
            return self._escalator.chain(self._find(alarm).key)
        except UnknownAlarm:
            return None

    @property
    def audio_pause(self) -> AudioPause | None:
        """The station-wide audio pause in force, if any."""
        return self._audio_pause

    def assign_id(self, key: str, alarm_id: int) -> Alarm:
        """Record the database id the store gave an alarm; later transitions carry it.
        Returns the alarm as it now is."""
        return self._record_id(key, alarm_id).snapshot()

    def record_id(self, key: str, alarm_id: int) -> None:
        """:meth:`assign_id` without making the alarm's snapshot: what the alarm service
        calls for every alarm it has just stored, which needs no snapshot back."""
        self._record_id(key, alarm_id)

    def _record_id(self, key: str, alarm_id: int) -> AlarmRecord:
        record = self._open.get(key)
        if record is None:
            raise UnknownAlarm(f"no open alarm {key!r}")
        if record.alarm_id is not None:
            self._by_id.pop(record.alarm_id, None)
        record.alarm_id = alarm_id
        self._by_id[alarm_id] = key
        return record

    def snapshot(self) -> EngineSnapshot:
        """Open alarms, escalation chains and the audio pause, as plain values."""
        return EngineSnapshot(
            alarms=tuple(r.snapshot() for r in self._open.values()),
            chains=() if self._escalator is None else self._escalator.snapshot(),
            audio_pause=self._audio_pause,
        )

    def restore(self, snapshot: EngineSnapshot) -> None:
        """Take up the state saved before a restart (call before the first reading).

        Chains resume with their remaining time (due times are absolute); a chain whose alarm
        is not among the open alarms is dropped.
        """
        self._lanes.clear()
        for alarm in snapshot.alarms:
            if not alarm.is_open:
                continue
            record = AlarmRecord.from_alarm(
                alarm, higher_is_worse=_higher_is_worse(alarm.kind, alarm.condition)
            )
            self._open[alarm.key] = record
            self._count_open(alarm.key, 1)
            self._sync_sides(alarm.key)
            if alarm.alarm_id is not None:
                self._by_id[alarm.alarm_id] = alarm.key
        if self._escalator is not None:
            self._escalator.restore(c for c in snapshot.chains if c.alarm_key in self._open)
        self._audio_pause = snapshot.audio_pause

    # == internals: readings ==================================================================

    def _on_reading(
        self, reading: AttributedReading, now: datetime, live_from: datetime
    ) -> list[AlarmTransition]:
        live = reading.measured_at >= live_from
        out = self._technical_on_reading(reading, now, live)
        if not live:
            return out
        scope = reading.scope
        for measurement in reading.measurements:
            out += self._on_measurement(reading, scope, measurement, now)
        return out

    def _on_measurement(
        self, reading: AttributedReading, scope: str, measurement: Measurement, now: datetime
    ) -> list[AlarmTransition]:
        track_key = (scope, measurement.kind)
        track = self._tracks.get(track_key)
        if track is None:
            track = self._tracks[track_key] = _VitalTrack(scope, measurement.kind)
            self._track_of_key[track.low_key] = self._track_of_key[track.high_key] = track
            self._sync_sides(track.low_key)  # an alarm of the scope may be open (restored)
        elif track.measured_at is not None and reading.measured_at < track.measured_at:
            return []  # older than what we have: history, not the present
        value = track.value = measurement.value
        track.measured_at = reading.measured_at
        track.patient_id = reading.patient_id
        track.bed_label = reading.bed_label
        track.device_id = reading.device_id
        limits = self._limits_for(reading.patient_id, track.kind)
        if limits is not track.calm_limits:  # new limits (override, profile saved): new band
            track.calm_limits = limits
            track.calm_low, track.calm_high = _calm_band(limits)
            track.checks = _checks_of(limits)
        # The common reading, inside every limit with nothing pending and no alarm open on
        # either side: _evaluate would change nothing, so it is not called.
        if track.calm_low < value < track.calm_high and not track.pending \
                and not track.open_sides:
            return []
        return self._evaluate(track, limits, now)

    def _evaluate(
        self, track: _VitalTrack, limits: VitalLimits | None, now: datetime
    ) -> list[AlarmTransition]:
        """Apply the latest value of a vital to its low and high alarms."""
        value = track.value
        if limits is None:
            breach = None
        elif limits is track.calm_limits:
            breach = _first_breach(track.checks, value)
        else:
            breach = limits.evaluate(value)
        out: list[AlarmTransition] = []
        # The side no longer breached first, so that an ended condition is logged before a
        # new one on the other side (HR 150 then 35: high latched, then low raised).
        if breach is not None and breach.direction is _LOW:
            directions = _HIGH_THEN_LOW
        else:
            directions = _LOW_THEN_HIGH
        open_ = self._open
        for direction in directions:
            here = breach if breach is not None and breach.direction is direction else None
            record = open_.get(track.keys[direction])
            if record is not None:
                if here is not None:
                    message = track.breach_message(direction, here)
                    if record.hold(value, here.priority, now, track.measured_at, message):
                        continue  # counted, nothing to report (observe would make no event)
                    events = record.observe(
                        value, priority_now=here.priority, at=now,
                        latching_for=self._latching_for[_LIMIT],
                        limit_value=here.limit.value, measured_at=track.measured_at,
                        message=message,
                    )
                elif (record.condition_present and limits is not None
                      and limits.still_breached(direction, value)):
                    events = record.observe(
                        value, priority_now=None, at=now,
                        latching_for=self._latching_for[_LIMIT],
                        measured_at=track.measured_at,
                    )
                elif record.condition_present:
                    events = record.condition_ended(now, "condition ended", value)
                else:
                    record.value, events = value, []  # latched: keep the value, no event
                if events:  # a plain update of the same condition makes none
                    out += self._settle(record, events, now)
            elif here is None:
                if track.pending:
                    track.pending.pop(direction, None)
            else:
                assert limits is not None  # a breach needs limits
                out += self._breach(track, limits, direction, here, now)
        if track.pending:
            self._pending_tracks.add(track.key)
        else:
            self._pending_tracks.discard(track.key)
        return out

    def _breach(
        self,
        track: _VitalTrack,
        limits: VitalLimits,
        direction: Direction,
        breach: LimitBreach,
        now: datetime,
    ) -> list[AlarmTransition]:
        """A breach with no alarm yet: raise now, or once it has held for the delay."""
        if limits.delay <= _ZERO:
            return self._raise_limit(track, direction, breach, now, None)
        pending = track.pending.get(direction)
        if pending is None:
            pending = track.pending[direction] = _Pending(now, breach, track.value)
        else:
            if breach.priority >= pending.breach.priority:
                pending.breach = breach
            pending.priority = max(pending.priority, breach.priority)
            if (track.value > pending.worst) == (direction is Direction.HIGH):
                pending.worst = track.value
        if now - pending.since < self._delay_for(limits, pending.priority):
            return []
        del track.pending[direction]
        return self._raise_limit(track, direction, pending.breach, now, pending)

    def _delay_for(self, limits: VitalLimits, priority: Priority) -> timedelta:
        if priority is Priority.HIGH:
            return min(limits.delay, self.policy.high_priority_delay_cap)
        return limits.delay

    def _raise_limit(
        self,
        track: _VitalTrack,
        direction: Direction,
        breach: LimitBreach,
        now: datetime,
        pending: _Pending | None,
    ) -> list[AlarmTransition]:
        if pending is None:  # ``breach`` is the current value against the current limits
            priority = current_priority = breach.priority
            message = track.breach_message(direction, breach)
        else:  # raised after its delay: the value now may be in another band, or none
            priority = pending.priority
            current = self._limits_for(track.patient_id, track.kind)
            now_breach = current.evaluate(track.value) if current is not None else None
            current_priority = None if now_breach is None else now_breach.priority
            message = _delayed_limit_message(track, direction, breach, pending)
        return self._open_alarm(  # positional: see _open_alarm
            now, track.keys[direction], _LIMIT, track.conditions[direction], priority,
            message, direction is _HIGH, track.bed_label, track.patient_id, track.device_id,
            track.kind, track.value, None if pending is None else pending.worst,
            current_priority, breach.limit.value, track.measured_at,
            None if pending is None else {"delayed_s": (now - pending.since).total_seconds()},
        )

    def _count_open(self, key: str, change: int) -> None:
        """Keep ``_tech_open`` in step with ``_open`` for a key opened (+1) or closed (-1)."""
        if not key.startswith("device:"):
            return
        device_id = key[len("device:"):key.rindex("|")]  # conditions hold no "|"
        count = self._tech_open.get(device_id, 0) + change
        if count > 0:
            self._tech_open[device_id] = count
        else:
            self._tech_open.pop(device_id, None)

    def _sync_sides(self, key: str) -> None:
        """Count again the open limit alarms of the vital track that alarm ``key`` (opened or
        closed) belongs to, if the track exists (a new track counts its own)."""
        track = self._track_of_key.get(key)
        if track is not None:
            open_ = self._open
            track.open_sides = (track.low_key in open_) + (track.high_key in open_)

    # == internals: technical =================================================================

    def _keys_of(self, device_id: str) -> _DeviceKeys:
        keys = self._device_keys.get(device_id)
        if keys is None:
            keys = self._device_keys[device_id] = _DeviceKeys(device_id)
        return keys

    def _technical_on_reading(
        self, reading: AttributedReading, now: datetime, live: bool
    ) -> list[AlarmTransition]:
        tech = self.policy.technical
        device = reading.device_id
        keys = self._device_keys.get(device) or self._keys_of(device)
        out: list[AlarmTransition] = []

        unknown = self._open.get(keys.unknown)
        if reading.attribution is Attribution.UNKNOWN_DEVICE:
            if unknown is None:
                out += self._raise(
                    now, key=keys.unknown, kind=AlarmKind.TECHNICAL,
                    condition=TechnicalCondition.UNKNOWN_DEVICE.value, priority=Priority.LOW,
                    message=f"Readings from unregistered device {device}",
                    higher_is_worse=None, **_where(reading),
                )
            else:
                unknown.observe(None, priority_now=Priority.LOW, at=now,
                                latching_for=self._latching_for[AlarmKind.TECHNICAL])
        elif unknown is not None:
            out += self._settle(unknown, unknown.force_resolve(now, "device registered"), now)

        if not live:
            return out  # an old reading says nothing of the device's present state
        if reading.attribution in (Attribution.PATIENT, Attribution.BED):
            if reading.data_source is DataSource.DEVICE:
                out += self._heard_from(reading, keys, now)
        elif device in self._devices:
            out += self.forget_device(device, reason=f"device {reading.attribution.value}")

        level = reading.battery_level
        if level is not None and (level < tech.low_battery_below or keys.battery in self._open):
            out += self._technical_level(
                keys.battery, now, reading, condition=TechnicalCondition.LOW_BATTERY,
                value=level, priority=battery_priority(level, tech),
                recovered=battery_recovered(level, tech), higher_is_worse=False,
                limit_value=tech.low_battery_below,
                message=lambda: f"Battery low on {device}: {_fmt(level)} %",
            )
        quality = reading.signal_quality
        if quality is not None and (signal_poor(quality, tech) or keys.signal in self._open):
            out += self._technical_level(
                keys.signal, now, reading, condition=TechnicalCondition.POOR_SIGNAL,
                value=quality, priority=Priority.LOW if signal_poor(quality, tech) else None,
                recovered=signal_recovered(quality, tech), higher_is_worse=False,
                limit_value=tech.poor_signal_below,
                message=lambda: f"Poor signal from {device}: {_fmt(quality)}",
            )
        # Measured before it was received (nearly every reading): not ahead, whatever the
        # threshold, and without the cost of a timedelta per reading.
        if reading.measured_at <= reading.received_at and tech.clock_ahead_after >= _ZERO \
                and keys.clock not in self._open:
            return out
        ahead = reading.measured_at - reading.received_at
        if ahead > tech.clock_ahead_after or keys.clock in self._open:
            seconds = ahead.total_seconds()
            out += self._technical_level(
                keys.clock, now, reading, condition=TechnicalCondition.CLOCK_AHEAD,
                value=seconds, priority=Priority.LOW if ahead > tech.clock_ahead_after else None,
                recovered=ahead <= tech.clock_ahead_after, higher_is_worse=True,
                limit_value=tech.clock_ahead_after.total_seconds(),
                message=lambda: f"Clock of {device} runs {_fmt(seconds)} s ahead of the station",
            )
        return out

    def _technical_level(
        self,
        key: str,
        now: datetime,
        reading: AttributedReading,
        *,
        condition: TechnicalCondition,
        value: float,
        priority: Priority | None,
        recovered: bool,
        higher_is_worse: bool,
        limit_value: float,
        message: Callable[[], str],
    ) -> list[AlarmTransition]:
        """A technical condition measured by a level (battery, signal, clock skew)."""
        record = self._open.get(key)
        if priority is not None:
            if record is None:
                return self._raise(
                    now, key=key, kind=AlarmKind.TECHNICAL, condition=condition.value,
                    priority=priority, message=message(), higher_is_worse=higher_is_worse,
                    value=value, limit_value=limit_value, **_where(reading),
                )
            events = record.observe(value, priority_now=priority, at=now, message=message(),
                                    latching_for=self._latching_for[AlarmKind.TECHNICAL])
            return self._settle(record, events, now)
        if record is None:
            return []
        if recovered:
            return self._settle(record, record.condition_ended(now, value=value), now)
        events = record.observe(value, priority_now=None, at=now,
                                latching_for=self._latching_for[AlarmKind.TECHNICAL])
        return self._settle(record, events, now)

    def _heard_from(
        self, reading: AttributedReading, keys: _DeviceKeys, now: datetime
    ) -> list[AlarmTransition]:
        """A device in a bed sent data: note it, and end its no-data alarms."""
        watch = self._devices.get(reading.device_id)
        if watch is None:
            watch = self._devices[reading.device_id] = _DeviceWatch(reading.device_id, now)
        watch.last_seen = now
        watch.bed_label, watch.patient_id = reading.bed_label, reading.patient_id
        cadence = self.policy.technical.no_data_after
        out: list[AlarmTransition] = []
        silent = self._open.get(keys.no_data)
        if silent is not None:
            out += self._settle(silent, silent.condition_ended(now, reason="data again"), now)
        for measurement in reading.measurements:
            if measurement.kind in cadence:
                watch.vitals_last_seen[measurement.kind] = now
                record = self._open.get(keys.no_data_of[measurement.kind])
                if record is not None:
                    out += self._settle(
                        record, record.condition_ended(now, reason="data again"), now
                    )
        return out

    def _check_no_data(self, now: datetime) -> list[AlarmTransition]:
        tech = self.policy.technical
        out: list[AlarmTransition] = []
        for watch in self._devices.values():
            limit = tech.silence_limit(frozenset(watch.vitals_last_seen))
            if limit is None:
                continue
            where = {"bed_label": watch.bed_label, "patient_id": watch.patient_id,
                     "device_id": watch.device_id}
            silent_for = now - watch.last_seen
            if silent_for > limit:
                key = _device_key(watch.device_id, TechnicalCondition.NO_DATA)
                if key not in self._open:
                    out += self._raise(
                        now, key=key, kind=AlarmKind.TECHNICAL,
                        condition=TechnicalCondition.NO_DATA.value,
                        priority=tech.no_data_priority,
                        message=f"No data from {watch.device_id} for "
                                f"{int(silent_for.total_seconds())} s",
                        higher_is_worse=True, value=silent_for.total_seconds(),
                        limit_value=limit.total_seconds(), **where,
                    )
                continue  # the device alarm covers its vitals
            for kind, last in watch.vitals_last_seen.items():
                vital_limit = tech.no_data_after.get(kind)
                key = _no_data_key(watch.device_id, kind)
                if vital_limit is None or now - last <= vital_limit or key in self._open:
                    continue
                out += self._raise(
                    now, key=key, kind=AlarmKind.TECHNICAL,
                    condition=f"{TechnicalCondition.NO_DATA.value}.{kind.value}",
                    priority=tech.no_data_priority,
                    message=f"No {VITAL_LABELS[kind]} from {watch.device_id} for "
                            f"{int((now - last).total_seconds())} s",
                    higher_is_worse=True, vital=kind, value=(now - last).total_seconds(),
                    limit_value=vital_limit.total_seconds(), **where,
                )
        return out

    def _check_input(self, name: str, now: datetime) -> list[AlarmTransition]:
        health = self._inputs[name]
        key = _input_key(name)
        if health.down_since is None or key in self._open:
            return []
        down_for = now - health.down_since
        limit = self.policy.technical.input_down_after
        if down_for <= limit:
            return []
        detail = f": {health.detail}" if health.detail else ""
        return self._raise(
            now, key=key, kind=AlarmKind.TECHNICAL,
            condition=TechnicalCondition.INPUT_DOWN.value,
            priority=self.policy.technical.input_down_priority,
            message=f"Input {name} down for {int(down_for.total_seconds())} s{detail}",
            higher_is_worse=True, value=down_for.total_seconds(),
            limit_value=limit.total_seconds(),
        )

    # == internals: NEWS2 =====================================================================

    def _news2_on_reading(self, reading: AttributedReading) -> bool:
        """Keep the reading's NEWS2 values (any age: staleness is judged when scoring);
        True when the patient must be re-scored."""
        if self.policy.news2 is None or reading.patient_id is None:
            return False
        state: _PatientNews2 | None = None
        for measurement in reading.measurements:
            param = _PARAMETER_OF_VITAL.get(measurement.kind)
            if param is None:
                continue
            if state is None:
                state = self._news2.get(reading.patient_id)
                if state is None:
                    state = self._news2[reading.patient_id] = _PatientNews2()
            latest = state.measured.get(param)
            if latest is None:
                state.measured[param] = _Latest(measurement.value, reading.measured_at)
            else:
                latest.keep(measurement.value, reading.measured_at)
        if state is None:
            return False
        state.bed_label = reading.bed_label or state.bed_label
        return True

    def _evaluate_news2(
        self, patient_id: str, state: _PatientNews2, now: datetime, *, device_id: str | None
    ) -> list[AlarmTransition]:
        if self.policy.news2 is None or len(state.measured) < len(MEASURED):
            return []  # a parameter never measured: incomplete whatever else is known
        result = compute_news2(state.inputs(), now=now, policy=self.policy.news2)
        if result.risk is None:
            return []  # incomplete: never scored from missing or stale values, never cleared
        risk = result.risk
        priority = RISK_PRIORITY[risk]
        key = _news2_key(patient_id)
        record = self._open.get(key)
        if priority is not None:
            message = result.summary()  # only an alarm shows it: not made for a low score
            if record is None:
                return self._raise(
                    now, key=key, kind=AlarmKind.NEWS2, condition="news2", priority=priority,
                    message=message, higher_is_worse=True, bed_label=state.bed_label,
                    patient_id=patient_id, device_id=device_id,
                    value=float(result.minimum_total), limit_value=_NEWS2_THRESHOLD[risk],
                    details={"assumed": [p.value for p in result.assumed]},
                )
            events = record.observe(
                float(result.minimum_total), priority_now=priority, at=now, message=message,
                limit_value=_NEWS2_THRESHOLD[risk],
                latching_for=self._latching_for[AlarmKind.NEWS2],
            )
            return self._settle(record, events, now)
        if record is None:
            return []
        events = record.condition_ended(
            now, reason="NEWS2 below its thresholds", value=float(result.minimum_total)
        )
        return self._settle(record, events, now)

    # == internals: raising, settling, escalation =============================================

    def _raise(
        self,
        now: datetime,
        *,
        key: str,
        kind: AlarmKind,
        condition: str,
        priority: Priority,
        message: str,
        higher_is_worse: bool | None,
        bed_label: str | None = None,
        patient_id: str | None = None,
        device_id: str | None = None,
        vital: VitalKind | None = None,
        value: float | None = None,
        worst_value: float | None = None,
        current_priority: Priority | None = None,
        limit_value: float | None = None,
        measured_at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> list[AlarmTransition]:
        """Open a new alarm (paused from the start if a station pause covers its priority)."""
        return self._open_alarm(
            now, key, kind, condition, priority, message, higher_is_worse, bed_label,
            patient_id, device_id, vital, value, worst_value, current_priority, limit_value,
            measured_at, details,
        )

    def _open_alarm(
        self,
        now: datetime,
        key: str,
        kind: AlarmKind,
        condition: str,
        priority: Priority,
        message: str,
        higher_is_worse: bool | None,
        bed_label: str | None,
        patient_id: str | None,
        device_id: str | None,
        vital: VitalKind | None,
        value: float | None,
        worst_value: float | None,
        current_priority: Priority | None,
        limit_value: float | None,
        measured_at: datetime | None,
        details: Mapping[str, Any] | None,
    ) -> list[AlarmTransition]:
        """:meth:`_raise` with every value positional, in its order: a limit alarm is opened
        for one reading in 30 on a busy ward, and a call with 16 keywords costs about ten
        times one with the same values by position."""
        state, paused_until = _ACTIVE, None
        extra = dict(details) if details else None  # no dict when there is nothing to add
        pause = self._audio_pause
        held = None if pause is None else pause.holds(_scope_of(key), priority, now)
        if held is True:
            assert pause is not None
            state, paused_until = AlarmState.AUDIO_PAUSED, pause.until
            if extra is None:
                extra = {}
            extra["audio_pause"] = "held"
        elif held is False:
            if extra is None:
                extra = {}
            extra["audio_pause"] = "broke through"
        # AlarmRecord's parameters in order (key, kind, condition, priority, at, message,
        # latching, higher_is_worse, bed_label, patient_id, device_id, vital, value,
        # limit_value, measured_at, state, audio_paused_until): a class called with 17
        # keywords gets them as a dict, at several times the cost.
        record = AlarmRecord(
            key, kind, condition, priority, now, message, self._latching_for[kind][priority],
            higher_is_worse, bed_label, patient_id, device_id, vital, value, limit_value,
            measured_at, state, paused_until,
        )
        if worst_value is not None:
            record.worst_value = worst_value
        if current_priority is not None or kind is _LIMIT:
            record.current_priority = current_priority
        self._open[key] = record
        if key.startswith(_DEVICE_SCOPE):
            self._count_open(key, 1)
        if kind is _LIMIT:
            self._sync_sides(key)
        raised = record.raised_event(extra)
        # The escalation's first step carries the same snapshot: nothing changed in between.
        return [raised, *self._start_escalation(record, now, raised.alarm)]

    def _settle(
        self, record: AlarmRecord, events: list[AlarmTransition], now: datetime
    ) -> list[AlarmTransition]:
        """Bookkeeping after a record's events: forget it once resolved (ending its chain),
        and keep its chain in step with a raised priority."""
        if not events:
            return events
        if record.state is _RESOLVED:  # not record.is_open
            if self._open.pop(record.key, None) is not None:
                if record.key.startswith(_DEVICE_SCOPE):
                    self._count_open(record.key, -1)
                if record.kind is _LIMIT:
                    self._sync_sides(record.key)
            if record.alarm_id is not None:
                self._by_id.pop(record.alarm_id, None)
            if self._escalator is not None:  # the chain ends with the resolved snapshot
                events = events + self._wrap(
                    self._escalator.end(
                        record.key, "alarm resolved", SYSTEM_ACTOR, SYSTEM_ORIGIN, now
                    ),
                    events[-1].alarm,
                )
            return events
        if self._escalator is None or record.kind not in self.policy.escalate_kinds:
            return events
        out = list(events)
        for index, event in enumerate(events):
            if event.kind is not _PRIORITY_RAISED:
                continue
            chain = self._escalator.priority_changed(record.key, record.priority, now=now)
            if chain is None:
                out += self._start_escalation(record, now)
            else:
                out[index] = event._replace(escalation=chain)
        return out

    def _start_escalation(
        self, record: AlarmRecord, now: datetime, snapshot: Alarm | None = None
    ) -> list[AlarmTransition]:
        if (self._escalator is None or record.kind not in self.policy.escalate_kinds
                or (record.patient_id is None and record.bed_label is None)):
            return []
        events = self._escalator.start(  # by position: a call with keywords costs more
            record.key, record.priority, record.message, record.patient_id, record.bed_label,
            now,
        )
        return self._wrap(events, record if snapshot is None else snapshot)

    def _wrap(
        self, events: list[EscalationEvent], alarm: Alarm | AlarmRecord
    ) -> list[AlarmTransition]:
        """Escalation steps as transitions of their alarm (the same audit trail); a record
        is only copied into a snapshot when there are steps to wrap."""
        if not events:
            return []
        if isinstance(alarm, AlarmRecord):
            alarm = alarm.snapshot()
        alarm_id = alarm.alarm_id
        state = alarm.state
        out = []
        for kind, chain, at, actor, origin, details, notifications in events:
            if notifications and alarm_id is not None:
                notifications = tuple(
                    _new_tuple(Notification, (*n[:-1], alarm_id))  # _replace(alarm_id=)
                    for n in notifications
                )
            out.append(_new_tuple(AlarmTransition, (  # every field, in order: see model.py
                kind, alarm, at, actor, origin, state, state, details, notifications, chain,
            )))
        return out

    # == internals: lookups ===================================================================

    def _profile_limits(self) -> dict[VitalKind, VitalLimits]:
        """The profile's limits as a plain dict (read once per batch; a mapping proxy's
        ``get`` costs more), remade when the profile is replaced."""
        profile = self.profile
        cached = self._profile_limits_of
        if cached[0] is not profile:
            cached = self._profile_limits_of = (profile, dict(profile.limits))
        return cached[1]

    def _limits_for(self, patient_id: str | None, kind: VitalKind) -> VitalLimits | None:
        per_patient = self._overrides.by_patient.get(patient_id) if patient_id else None
        override = per_patient.get(kind) if per_patient else None
        return override.limits if override is not None else self.profile.limits.get(kind)

    def _find(self, alarm: AlarmRef) -> AlarmRecord:
        key = self._by_id.get(alarm) if isinstance(alarm, int) else alarm
        record = None if key is None else self._open.get(key)
        if record is None:
            raise UnknownAlarm(f"no open alarm {alarm!r}")
        return record

    def _clinician(self, actor: str, origin: str, action: str) -> tuple[str, str]:
        actor, origin = check_actor(actor), check_origin(origin)
        if self.policy.refuse_device_actions and is_device_origin(origin):
            raise AlarmActionError(
                f"a bedside device cannot {action} alarms; it may only answer for the patient"
            )
        return actor, origin

    def _require_escalator(self) -> Escalator:
        if self._escalator is None:
            raise AlarmActionError("escalation is disabled on this station")
        return self._escalator


def _count_raised(raised_by: dict[int, int], index: int, made: list[AlarmTransition]) -> None:
    """Add the alarms ``made`` raised to row ``index``'s count (none: no entry)."""
    count = 0
    for transition in made:
        if transition.kind is _RAISED:
            count += 1
    if count:
        raised_by[index] = raised_by.get(index, 0) + count


def _parse_enum(enum_type: Any, value: Any, what: str) -> Any:
    """``enum_type(value)``, refused as an operator error naming the choices."""
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in enum_type)
        raise AlarmActionError(f"{value!r} is not a {what}; use one of {choices}") from None


def _where(reading: AttributedReading) -> dict[str, Any]:
    """Where a device's technical alarm is shown: its bed and patient now."""
    return {"bed_label": reading.bed_label, "patient_id": reading.patient_id,
            "device_id": reading.device_id}


_UNSET = object()
_PARAMETER_OF_VITAL: dict[VitalKind, Parameter] = dict(PARAMETER_OF_VITAL)


def _calm_band(limits: VitalLimits | None) -> tuple[float, float]:
    """The open interval of values that breach none of ``limits``: above every low limit and
    below every high one (a value on a limit, or NaN, is left to the full evaluation)."""
    if limits is None:
        return -math.inf, math.inf
    low, high = -math.inf, math.inf
    for limit in limits.limits:
        if limit.direction is Direction.HIGH:
            high = min(high, limit.value)
        else:
            low = max(low, limit.value)
    return low, high


def _scope_of(key: str) -> str:
    """``bed:12`` of ``bed:12|limit.heart_rate.high``."""
    return key.split("|", 1)[0]


def _limit_key(scope: str, kind: VitalKind, direction: Direction) -> str:
    return f"{scope}|limit.{kind.value}.{direction.value}"


def _device_key(device_id: str, condition: TechnicalCondition) -> str:
    return f"device:{device_id}|{condition.value}"


def _no_data_key(device_id: str, kind: VitalKind) -> str:
    return f"device:{device_id}|{TechnicalCondition.NO_DATA.value}.{kind.value}"


def _input_key(name: str) -> str:
    return f"input:{name}|{TechnicalCondition.INPUT_DOWN.value}"


def _notify_key(channel: str) -> str:
    return f"notify:{channel}|{TechnicalCondition.NOTIFICATION_FAILED.value}"


def _news2_key(patient_id: str) -> str:
    return f"patient:{patient_id}|news2"


def _higher_is_worse(kind: AlarmKind, condition: str) -> bool | None:
    """Which way an alarm's value worsens, from its condition (for restored alarms)."""
    if kind is AlarmKind.LIMIT:
        return condition.endswith(f".{Direction.HIGH.value}")
    if kind is AlarmKind.NEWS2:
        return True
    if condition in (TechnicalCondition.LOW_BATTERY, TechnicalCondition.POOR_SIGNAL):
        return False
    if condition == TechnicalCondition.UNKNOWN_DEVICE:
        return None
    return True


def _fmt(value: float) -> str:
    """At most two decimals, no trailing zeros: 160, 38.61, 36.1."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _delayed_limit_message(
    track: _VitalTrack, direction: Direction, breach: LimitBreach, pending: _Pending | None
) -> str:
    """The raise message; after a delay, the worst value that set the priority and the value now.

    A breach held through its delay is raised at the priority of its worst value, so the
    message names that value next to its limit ("SpO2 low: 84 % (limit < 85), now 86 %"),
    never the current value alone beside a limit it no longer crosses.
    """
    if pending is None or pending.worst == track.value:
        return _limit_message(track.kind, direction, track.value, breach)
    unit = CANONICAL_UNIT[track.kind].value
    return (f"{_limit_message(track.kind, direction, pending.worst, breach)}, "
            f"now {_fmt(track.value)} {unit}")


def _limit_message(
    kind: VitalKind, direction: Direction, value: float, breach: LimitBreach
) -> str:
    """``Heart rate high: 160 /min (limit ≥ 149.5)``; the text around the value is made once
    per vital and limit (an open alarm's every reading renews its message)."""
    limit = breach.limit
    parts = _MESSAGE_PARTS.get((id(limit), kind, direction))
    if parts is None or parts[0] is not limit:
        if len(_MESSAGE_PARTS) >= _MESSAGE_PARTS_MAX:  # limits replaced many times over
            _MESSAGE_PARTS.clear()
        sign = limit.describe().split(" ", 1)[0]
        parts = _MESSAGE_PARTS[(id(limit), kind, direction)] = (
            limit, f"{VITAL_LABELS[kind]} {direction.value}: ",
            f" {CANONICAL_UNIT[kind].value} (limit {sign} {_fmt(limit.value)})",
        )
    return parts[1] + _fmt(value) + parts[2]


# (id of a limit, vital, side) -> (the limit, the message's text before and after the value).
# The limit is kept, so its id is not reused while its entry exists.
_MESSAGE_PARTS: dict[tuple[int, VitalKind, Direction], tuple[Limit, str, str]] = {}
_MESSAGE_PARTS_MAX = 4096

# A named tuple from every value, without its __new__'s Python frame (the hot paths above).
_new_tuple = tuple.__new__
# Members read once (on Python 3.11 ``Direction.HIGH`` goes through the enum class's
# ``__getattr__`` hook, ~1,000 instructions each time).
_LOW = Direction.LOW
_HIGH = Direction.HIGH
_LIMIT = AlarmKind.LIMIT
_ACTIVE = AlarmState.ACTIVE
_PRIORITY_RAISED = TransitionKind.PRIORITY_RAISED
_LOW_THEN_HIGH = (Direction.LOW, Direction.HIGH)
_HIGH_THEN_LOW = (Direction.HIGH, Direction.LOW)
_RESOLVED = AlarmState.RESOLVED
_RAISED = TransitionKind.RAISED
_DEVICE_SCOPE = "device:"  # the keys _count_open counts
assert Notification._fields[-1] == "alarm_id"  # _wrap replaces the last value

_Check = tuple[bool, float, bool, LimitBreach]
"""One limit as :func:`_first_breach` tests it: high side?, threshold, inclusive, its breach."""


def _checks_of(limits: VitalLimits | None) -> tuple[_Check, ...]:
    """``limits`` (most severe first), each with the one :class:`LimitBreach` it makes."""
    if limits is None:
        return ()
    return tuple(
        (limit.direction is Direction.HIGH, limit.value, limit.inclusive,
         LimitBreach(limit.direction, limit.priority, limit))
        for limit in limits.limits
    )


def _first_breach(checks: tuple[_Check, ...], value: float) -> LimitBreach | None:
    """``VitalLimits.evaluate`` from precomputed checks: no method call or new breach object
    per limit and reading."""
    for high, threshold, inclusive, breach in checks:
        if (value > threshold if high else value < threshold) or (
            inclusive and value == threshold
        ):
            return breach
    return None
