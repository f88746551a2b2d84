"""Limit alarms: per-vital limits with IEC 60601-1-8 priorities, the three profiles, overrides.

A vital's limits are a set of one-sided thresholds (:class:`Limit`), each saying on which side
of it a value alarms, whether the threshold value itself alarms, and at which priority. A value
takes the priority of the most severe limit it breaches, or none: every real value therefore
falls in exactly one band, by construction. (The seed's InHealth bands were closed integer
ranges evaluated top-down with "else = Emergency", so 36.1 °C and glucose 119.5 fell through
the gaps into a false Emergency.) Values are compared in canonical units (°C, mg/dL, mmHg, %,
/min) on the real value, never truncated.

Profiles (``PROFILES``):

- ``inhealth``: the seed's nurse / doctor / emergency bands made contiguous (see
  :data:`INHEALTH`), nurse → LOW, doctor → MEDIUM, emergency → HIGH.
- ``bedside-monitor``: the seed consumer's anomaly thresholds at MEDIUM (:data:`BEDSIDE_MONITOR`).
- ``adult-ward`` (default): our adult general-ward profile (:data:`ADULT_WARD`).

Whatever the profile or a patient's override says, :data:`CRITICAL_FLOOR` keeps asystole,
apnoea and profound desaturation at HIGH (the seed's consumer-side thresholds would make
HR 0 a MEDIUM alarm, and an override could otherwise switch them off).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from vitalstation.alarms.model import AlarmActionError, Priority
from vitalstation.config.settings import Settings
from vitalstation.domain.vitals import VitalKind, fahrenheit_to_celsius

_ZERO = timedelta(0)


class Direction(enum.StrEnum):
    """Which side of a limit alarms."""

    LOW = "low"  # values below (or at, if inclusive) the limit
    HIGH = "high"  # values above (or at, if inclusive) the limit


@dataclass(frozen=True, slots=True)
class Limit:
    """One threshold, ``value`` in the vital's canonical unit; ``inclusive``: the value alarms too.

    ``Limit(Direction.HIGH, 100.0, Priority.LOW, inclusive=False)`` alarms for ``v > 100``.
    """

    direction: Direction
    value: float
    priority: Priority
    inclusive: bool = False

    def breached(self, value: float) -> bool:
        """True when ``value`` is on the alarming side of this limit."""
        if self.direction is Direction.HIGH:
            return value > self.value or (self.inclusive and value == self.value)
        return value < self.value or (self.inclusive and value == self.value)

    def describe(self) -> str:
        """``> 100``, ``≥ 149.5``, ``< 30``, ``≤ 49.5``."""
        if self.direction is Direction.HIGH:
            sign = "≥" if self.inclusive else ">"
        else:
            sign = "≤" if self.inclusive else "<"
        return f"{sign} {round(self.value, 2):g}"


def below(value: float, priority: Priority, *, inclusive: bool = False) -> Limit:
    """A low limit: alarm for values under ``value`` (and at it, if ``inclusive``)."""
    return Limit(Direction.LOW, float(value), priority, inclusive)


def above(value: float, priority: Priority, *, inclusive: bool = False) -> Limit:
    """A high limit: alarm for values over ``value`` (and at it, if ``inclusive``)."""
    return Limit(Direction.HIGH, float(value), priority, inclusive)


@dataclass(frozen=True, slots=True)
class LimitBreach:
    """A value outside its limits: the side, the band's priority and the limit breached."""

    direction: Direction
    priority: Priority
    limit: Limit


@dataclass(frozen=True, slots=True)
class VitalLimits:
    """The limits of one vital, with its alarm delay and hysteresis.

    ``delay``: the condition must hold this long before the alarm is raised (artefact
    suppression; HIGH is never delayed beyond the engine's cap). ``hysteresis``: once raised,
    the alarm clears only when the value is back inside the limit by this margin (in the
    canonical unit), so a value hovering on a limit does not raise and clear every second.
    """

    kind: VitalKind
    limits: tuple[Limit, ...]
    delay: timedelta = _ZERO
    hysteresis: float = 0.0

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.limits, key=lambda lim: -lim.priority.rank))
        object.__setattr__(self, "limits", ordered)
        seen: set[tuple[Direction, Priority]] = set()
        for limit in ordered:
            if not math.isfinite(limit.value):
                raise ValueError(f"{self.kind.value}: limit {limit.value} is not finite")
            slot = (limit.direction, limit.priority)
            if slot in seen:
                raise ValueError(
                    f"{self.kind.value}: two {limit.direction.value} limits at "
                    f"{limit.priority.value} priority"
                )
            seen.add(slot)
        lows = [lim.value for lim in ordered if lim.direction is Direction.LOW]
        highs = [lim.value for lim in ordered if lim.direction is Direction.HIGH]
        if lows and highs and max(lows) > min(highs):
            raise ValueError(
                f"{self.kind.value}: low limit {max(lows):g} is above high limit {min(highs):g}"
            )
        if self.delay < _ZERO:
            raise ValueError(f"{self.kind.value}: negative alarm delay")
        if not math.isfinite(self.hysteresis) or self.hysteresis < 0:
            raise ValueError(f"{self.kind.value}: hysteresis must be a non-negative number")

    def evaluate(self, value: float) -> LimitBreach | None:
        """The most severe limit ``value`` breaches, or None when it is within all of them."""
        for limit in self.limits:  # most severe first
            if limit.breached(value):
                return LimitBreach(limit.direction, limit.priority, limit)
        return None

    def still_breached(self, direction: Direction, value: float) -> bool:
        """True while an alarm on ``direction`` must hold: breached, or within the hysteresis.

        A high alarm holds while ``value + hysteresis`` still breaches a high limit; a low alarm
        while ``value - hysteresis`` still breaches a low one.
        """
        high = direction is Direction.HIGH
        probe = value + self.hysteresis if high else value - self.hysteresis
        for lim in self.limits:  # Limit.breached inline (an open alarm's every calm reading)
            if lim.direction is direction and (
                (probe > lim.value if high else probe < lim.value)
                or (lim.inclusive and probe == lim.value)
            ):
                return True
        return False

    def edge(self, direction: Direction) -> Limit | None:
        """The least severe limit on one side: where the normal band ends."""
        candidates = [lim for lim in self.limits if lim.direction is direction]
        return candidates[-1] if candidates else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a stored override); :meth:`from_dict` reads it back."""
        return {
            "kind": self.kind.value,
            "limits": [
                {"direction": lim.direction.value, "value": lim.value,
                 "priority": lim.priority.value, "inclusive": lim.inclusive}
                for lim in self.limits
            ],
            "delay_s": self.delay.total_seconds(),
            "hysteresis": self.hysteresis,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VitalLimits:
        """Rebuild limits from :meth:`to_dict` output; ``ValueError`` on a malformed one."""
        try:
            limits = tuple(
                Limit(Direction(item["direction"]), float(item["value"]),
                      Priority(item["priority"]), bool(item.get("inclusive", False)))
                for item in data["limits"]
            )
            return cls(
                VitalKind(data["kind"]), limits,
                delay=timedelta(seconds=float(data.get("delay_s", 0.0))),
                hysteresis=float(data.get("hysteresis", 0.0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed limits {dict(data)!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class AlarmProfile:
    """A named set of limits, one :class:`VitalLimits` per alarmed vital."""

    name: str
    description: str
    limits: Mapping[VitalKind, VitalLimits]

    def __post_init__(self) -> None:
        floored = {kind: with_critical_floor(lims) for kind, lims in self.limits.items()}
        for kind in CRITICAL_FLOOR:
            floored.setdefault(kind, with_critical_floor(VitalLimits(kind, ())))
        object.__setattr__(self, "limits", MappingProxyType(floored))

    def limits_for(self, kind: VitalKind) -> VitalLimits | None:
        """The limits of ``kind``, or None when the profile does not alarm on it."""
        return self.limits.get(kind)


@dataclass(frozen=True, slots=True)
class LimitOverride:
    """One patient's limits for one vital, replacing the profile's while the patient stays.

    Set by a clinician (``author``) for a ``reason`` at ``at``; the audit trail and storage are
    the caller's. Dropped on discharge (:meth:`AlarmEngine.discharge`). The critical floor still
    applies: an override cannot make asystole anything but HIGH.
    """

    patient_id: str
    limits: VitalLimits
    author: str
    reason: str
    at: datetime

    def __post_init__(self) -> None:
        if not self.patient_id:
            raise AlarmActionError("a limit override needs the patient")
        if not self.author or not self.author.strip():
            raise AlarmActionError("a limit override needs its author")
        if not self.reason or not self.reason.strip():
            raise AlarmActionError("a limit override needs a reason")
        object.__setattr__(self, "limits", with_critical_floor(self.limits))

    @property
    def kind(self) -> VitalKind:
        """The vital overridden."""
        return self.limits.kind


# -- the critical floor ---------------------------------------------------------------------------

CRITICAL_FLOOR: Mapping[VitalKind, Limit] = MappingProxyType({
    # Extreme bradycardia / asystole (HR 0 is a value, not "missing": the seed raised nothing).
    VitalKind.HEART_RATE: below(30, Priority.HIGH),
    # Bradypnoea / apnoea.
    VitalKind.RESPIRATORY_RATE: below(6, Priority.HIGH),
    # Profound desaturation.
    VitalKind.SPO2: below(80, Priority.HIGH),
})
"""HIGH limits every profile and override keeps (a stricter HIGH limit of their own wins)."""


def with_critical_floor(limits: VitalLimits) -> VitalLimits:
    """``limits`` with the critical floor of its vital added where it is not already covered.

    A HIGH low limit at least as strict as the floor is kept; a weaker one is replaced by the
    floor; lower-priority limits that the floor makes unreachable are dropped.
    """
    floor = CRITICAL_FLOOR.get(limits.kind)
    if floor is None:
        return limits
    own_high = next(
        (lim for lim in limits.limits
         if lim.direction is floor.direction and lim.priority is Priority.HIGH),
        None,
    )
    if own_high is not None and _at_least_as_strict(own_high, floor):
        return limits
    kept = [
        lim for lim in limits.limits
        if lim is not own_high
        and not (lim.direction is floor.direction and _at_least_as_strict(floor, lim))
    ]
    return VitalLimits(limits.kind, (*kept, floor), limits.delay, limits.hysteresis)


def _at_least_as_strict(a: Limit, b: Limit) -> bool:
    """True when every value ``b`` alarms on, ``a`` alarms on too (same direction)."""
    if a.direction is Direction.LOW:
        return a.value > b.value or (a.value == b.value and (a.inclusive or not b.inclusive))
    return a.value < b.value or (a.value == b.value and (a.inclusive or not b.inclusive))


def _f(fahrenheit: float) -> float:
    """A °F edge in canonical °C, converted exactly as the domain converts readings.

    Using the very function that converts a device's °F reading means a reading exactly on an
    edge (e.g. 101.95 °F) compares equal to it, not a rounding error away.
    """
    return fahrenheit_to_celsius(fahrenheit)


H, M, L = Priority.HIGH, Priority.MEDIUM, Priority.LOW

# -- inhealth -------------------------------------------------------------------------------------

INHEALTH = AlarmProfile(
    "inhealth",
    """The InHealth seed's bands (VitalSign.get_*_status), made contiguous.

    The seed checked closed ranges of whole numbers (tenths for °F) top-down, and sent every
    value that fell between two ranges to the final else, Emergency. Here:

    - Where two ranges leave a gap (99 | 100, 101.9 | 102 °F), the edge is the gap's midpoint,
      and a value exactly on it belongs to the more severe band (when in doubt, alarm higher).
    - Where the seed's ranges touch, the edge stays (SpO2 ``88 <= x < 92``; SBP 100 is normal
      and 100.4 °F is nurse-level, as the seed checked them; below the lowest doctor range
      everything is Emergency, as the seed's else made it: HR < 30, RR < 7, temperature < 93 °F).
    - Temperature edges are °F figures converted exactly to °C: 36.1 °C (96.98 °F) is normal,
      not the seed's false Emergency; 96.95 °F itself is nurse-level, 101.95 °F doctor-level.
    - Glucose: the seed made 50–119 mg/dL (normal fasting glucose) a nurse alert and 120–299
      normal. Fixed: normal is 70–299; the nurse band is hypoglycaemia below 70 mg/dL (ADA
      level 1); 49.5 and below doctor; below 30 Emergency. The high side is the seed's.
    - SpO2 above 100 % cannot arrive (the domain refuses it), so the seed's "> 100 = Emergency"
      is gone.

    | vital | HIGH | MEDIUM | LOW | normal | LOW | MEDIUM | HIGH |
    |---|---|---|---|---|---|---|---|
    | HR /min | < 30 | ≤ 39.5 | ≤ 49.5 | 49.5–99.5 | ≥ 99.5 | ≥ 119.5 | ≥ 149.5 |
    | SBP mmHg | < 80 | ≤ 89.5 | < 100 | 100–149.5 | ≥ 149.5 | ≥ 179.5 | ≥ 219.5 |
    | DBP mmHg | < 30 | ≤ 39.5 | ≤ 49.5 | 49.5–99.5 | ≥ 99.5 | ≥ 109.5 | ≥ 119.5 |
    | Temp °F (in °C) | < 93 | ≤ 94.95 | ≤ 96.95 | 96.95–100.4 | ≥ 100.4 | ≥ 101.95 | ≥ 104.95 |
    | RR /min | < 7 | ≤ 8.5 | ≤ 11.5 | 11.5–29.5 | ≥ 29.5 | ≥ 39.5 | ≥ 49.5 |
    | SpO2 % | < 81 | < 88 | < 92 | ≥ 92 | | | |
    | Glucose mg/dL | < 30 | ≤ 49.5 | < 70 | 70–299.5 | ≥ 299.5 | ≥ 399.5 | ≥ 749.5 |
    """,
    {
        VitalKind.HEART_RATE: VitalLimits(VitalKind.HEART_RATE, (
            below(30, H), below(39.5, M, inclusive=True), below(49.5, L, inclusive=True),
            above(99.5, L, inclusive=True), above(119.5, M, inclusive=True),
            above(149.5, H, inclusive=True),
        )),
        VitalKind.SYSTOLIC_BP: VitalLimits(VitalKind.SYSTOLIC_BP, (
            below(80, H), below(89.5, M, inclusive=True), below(100, L),
            above(149.5, L, inclusive=True), above(179.5, M, inclusive=True),
            above(219.5, H, inclusive=True),
        )),
        VitalKind.DIASTOLIC_BP: VitalLimits(VitalKind.DIASTOLIC_BP, (
            below(30, H), below(39.5, M, inclusive=True), below(49.5, L, inclusive=True),
            above(99.5, L, inclusive=True), above(109.5, M, inclusive=True),
            above(119.5, H, inclusive=True),
        )),
        VitalKind.TEMPERATURE: VitalLimits(VitalKind.TEMPERATURE, (
            below(_f(93), H), below(_f(94.95), M, inclusive=True),
            below(_f(96.95), L, inclusive=True),
            above(_f(100.4), L, inclusive=True), above(_f(101.95), M, inclusive=True),
            above(_f(104.95), H, inclusive=True),
        )),
        VitalKind.RESPIRATORY_RATE: VitalLimits(VitalKind.RESPIRATORY_RATE, (
            below(7, H), below(8.5, M, inclusive=True), below(11.5, L, inclusive=True),
            above(29.5, L, inclusive=True), above(39.5, M, inclusive=True),
            above(49.5, H, inclusive=True),
        )),
        VitalKind.SPO2: VitalLimits(VitalKind.SPO2, (
            below(81, H), below(88, M), below(92, L),
        )),
        VitalKind.GLUCOSE: VitalLimits(VitalKind.GLUCOSE, (
            below(30, H), below(49.5, M, inclusive=True), below(70, L),
            above(299.5, L, inclusive=True), above(399.5, M, inclusive=True),
            above(749.5, H, inclusive=True),
        )),
    },
)

# -- bedside-monitor ------------------------------------------------------------------------------

BEDSIDE_MONITOR = AlarmProfile(
    "bedside-monitor",
    """The bedside-monitor seed's anomaly thresholds, on the real value, at MEDIUM priority.

    The seed's consumer flagged ``value < 60 or value > 100`` (HR), ``< 85 or > 110`` (SpO2)
    and ``< 96 or > 101`` (temperature, °F) after ``int()``-truncating the value, so 101.5 °F
    passed as 101. Here the real value is compared (101.5 °F alarms, 100.9 °F does not; the
    thresholds themselves, e.g. 60 and 101 °F, do not alarm, as in the seed) and °F limits are
    converted exactly to °C. The seed has one anomaly level; we give it MEDIUM (IEC 60601-1-8
    Table 1: reversible injury, prompt response). SpO2 > 110 % cannot arrive (the domain
    refuses SpO2 > 100) and is kept only to show the seed's rule. The critical floor makes
    HR < 30, RR < 6 and SpO2 < 80 HIGH; the seed watched no other vital.

    | vital | MEDIUM low | MEDIUM high |
    |---|---|---|
    | HR /min | < 60 | > 100 |
    | SpO2 % | < 85 | > 110 (unreachable) |
    | Temp °F (in °C) | < 96 | > 101 |
    """,
    {
        VitalKind.HEART_RATE: VitalLimits(VitalKind.HEART_RATE, (
            below(60, M), above(100, M),
        )),
        VitalKind.SPO2: VitalLimits(VitalKind.SPO2, (below(85, M), above(110, M))),
        VitalKind.TEMPERATURE: VitalLimits(VitalKind.TEMPERATURE, (
            below(_f(96), M), above(_f(101), M),
        )),
    },
)

# -- adult-ward -----------------------------------------------------------------------------------

ADULT_WARD = AlarmProfile(
    "adult-ward",
    """Adult general ward (the default), from NEWS2 Chart 1 and common monitor defaults.

    HIGH = a value NEWS2 scores 3 (a "red score", urgent response) or that common practice
    treats as immediately life-threatening; MEDIUM = NEWS2 2 or a usual monitor default limit;
    LOW only where a slow-moving vital (temperature, glucose, RR) deserves a nurse's look.
    Integer NEWS2 edges are kept as NEWS2 counts them (HR 40 is HIGH, 130 MEDIUM);
    temperature edges sit halfway between NEWS2's 0.1 °C steps, so that every real value
    lands in the band NEWS2 gives it after rounding. Limits are on the wide side on purpose:
    tight defaults are the main cause of alarm fatigue on wards.

    | vital | HIGH | MEDIUM | LOW | normal | LOW | MEDIUM | HIGH |
    |---|---|---|---|---|---|---|---|
    | HR /min | ≤ 40 | < 50 | | 50–110 | | > 110 | > 130 |
    | SpO2 % | < 85 | < 90 | | ≥ 90 | | | |
    | RR /min | ≤ 8 | | < 12 | 12–20 | | > 20 | > 24 |
    | SBP mmHg | ≤ 90 | ≤ 100 | | 101–179 | | ≥ 180 | ≥ 220 |
    | DBP mmHg | | < 40 | | 40–109 | | ≥ 110 | ≥ 120 |
    | Temp °C | < 35.05 | | < 36.05 | 36.05–38.05 | ≥ 38.05 | ≥ 39.05 | ≥ 40.0 |
    | Glucose mg/dL | < 54 | < 70 | | 70–180 | > 180 | > 300 | > 400 |

    Rationale: HR ≤ 40 / ≥ 131, RR ≤ 8 / ≥ 25, SBP ≤ 90 / ≥ 220 and temperature ≤ 35.0 °C are
    NEWS2's red scores; HR 111–130, RR 21–24, SBP 91–100 and temperature ≥ 39.1 °C its 2s.
    SpO2 < 90 % is the usual monitor default and < 85 % the bedside seed's own anomaly
    threshold (NEWS2's SpO2 scoring depends on the patient's scale and oxygen, so it is left
    to the NEWS2 alarm). SBP ≥ 180 / DBP ≥ 110 and ≥ 120 follow the hypertensive urgency and
    crisis thresholds; temperature ≥ 40.0 °C is hyperpyrexia. Glucose follows the ADA:
    < 70 mg/dL level 1 and < 54 level 2 hypoglycaemia; > 180 above the inpatient target,
    > 300 and > 400 hyperglycaemia needing a doctor. Delays: SpO2 15 s (motion artefact;
    the HIGH cap still applies), none elsewhere. Hysteresis: HR 2, SpO2 1, RR 1, BP 2,
    temperature 0.1, glucose 5 (canonical units).
    """,
    {
        VitalKind.HEART_RATE: VitalLimits(VitalKind.HEART_RATE, (
            below(40, H, inclusive=True), below(50, M), above(110, M), above(130, H),
        ), hysteresis=2.0),
        VitalKind.SPO2: VitalLimits(VitalKind.SPO2, (
            below(85, H), below(90, M),
        ), delay=timedelta(seconds=15), hysteresis=1.0),
        VitalKind.RESPIRATORY_RATE: VitalLimits(VitalKind.RESPIRATORY_RATE, (
            below(8, H, inclusive=True), below(12, L), above(20, M), above(24, H),
        ), hysteresis=1.0),
        VitalKind.SYSTOLIC_BP: VitalLimits(VitalKind.SYSTOLIC_BP, (
            below(90, H, inclusive=True), below(100, M, inclusive=True),
            above(180, M, inclusive=True), above(220, H, inclusive=True),
        ), hysteresis=2.0),
        VitalKind.DIASTOLIC_BP: VitalLimits(VitalKind.DIASTOLIC_BP, (
            below(40, M), above(110, M, inclusive=True), above(120, H, inclusive=True),
        ), hysteresis=2.0),
        VitalKind.TEMPERATURE: VitalLimits(VitalKind.TEMPERATURE, (
            below(35.05, H), below(36.05, L),
            above(38.05, L, inclusive=True), above(39.05, M, inclusive=True),
            above(40.0, H, inclusive=True),
        ), hysteresis=0.1),
        VitalKind.GLUCOSE: VitalLimits(VitalKind.GLUCOSE, (
            below(54, H), below(70, M), above(180, L), above(300, M), above(400, H),
        ), hysteresis=5.0),
    },
)

PROFILES: Mapping[str, AlarmProfile] = MappingProxyType({
    p.name: p for p in (ADULT_WARD, INHEALTH, BEDSIDE_MONITOR)
})
DEFAULT_PROFILE = ADULT_WARD.name


def get_profile(name: str) -> AlarmProfile:
    """The profile called ``name`` (the ``[alarms] profile`` setting); ``KeyError`` naming them."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not an alarm profile; use one of {', '.join(PROFILES)}"
        ) from None


@dataclass(slots=True)
class _OverrideBook:
    """The overrides in force, per patient and vital (engine-internal)."""

    by_patient: dict[str, dict[VitalKind, LimitOverride]] = field(default_factory=dict)

    def set(self, override: LimitOverride) -> LimitOverride | None:
        per = self.by_patient.setdefault(override.patient_id, {})
        previous = per.get(override.kind)
        per[override.kind] = override
        return previous

    def drop(self, patient_id: str) -> tuple[LimitOverride, ...]:
        return tuple(self.by_patient.pop(patient_id, {}).values())

    def remove(self, patient_id: str, kind: VitalKind) -> LimitOverride | None:
        per = self.by_patient.get(patient_id)
        removed = None if per is None else per.pop(kind, None)
        if per is not None and not per:
            del self.by_patient[patient_id]
        return removed

    def get(self, patient_id: str | None, kind: VitalKind) -> LimitOverride | None:
        if patient_id is None:
            return None
        per = self.by_patient.get(patient_id)
        return None if per is None else per.get(kind)

    def of(self, patient_id: str) -> tuple[LimitOverride, ...]:
        return tuple(self.by_patient.get(patient_id, {}).values())


# -- the admin's changes to a profile (Settings > Alarms, ``[alarms] limits`` and ``delays``) ----

_RANKS = (Priority.LOW, Priority.MEDIUM, Priority.HIGH)


class ProfileChangeError(ValueError):
    """A change to a profile's limits or delays that is refused; ``item`` is the setting's item
    (``"heart_rate.high.high = 100"``) or None, ``vital`` the vital concerned."""

    def __init__(self, reason: str, *, vital: VitalKind, item: str | None = None) -> None:
        super().__init__(f"{item!r}: {reason}" if item else reason)
        self.reason = reason
        self.vital = vital
        self.item = item


def limit_item(kind: VitalKind, direction: Direction, priority: Priority, value: float) -> str:
    """The ``[alarms] limits`` item that sets one limit: ``"heart_rate.high.medium = 120"``."""
    return f"{kind.value}.{direction.value}.{priority.value} = {value:g}"


def delay_item(kind: VitalKind, seconds: float) -> str:
    """The ``[alarms] delays`` item that sets one vital's delay: ``"oxygen_saturation = 20"``."""
    return f"{kind.value} = {seconds:g}"


def customised_profile(
    base: AlarmProfile,
    limits: Mapping[tuple[VitalKind, Direction, Priority], float],
    delays: Mapping[VitalKind, timedelta] | None = None,
) -> AlarmProfile:
    """``base`` with some limit values and delays changed, its structure kept.

    A change names a limit the profile has (its side, priority and inclusiveness stay); the
    result must stay contiguous and sane, else :class:`ProfileChangeError` says why: on each
    side a more severe limit lies further out than a less severe one (a high-priority limit
    inside the medium band would never sound as high), the low limits stay below the high ones
    (a normal band remains), and the critical floor is neither weakened nor made to swallow a
    lower-priority limit. No change: ``base`` itself.
    """
    delays = delays or {}
    if not limits and not delays:
        return base
    by_kind: dict[VitalKind, dict[tuple[Direction, Priority], float]] = {}
    for (kind, direction, priority), value in limits.items():
        by_kind.setdefault(kind, {})[direction, priority] = float(value)
    changed: dict[VitalKind, VitalLimits] = {}
    for kind in {*by_kind, *delays}:
        current = base.limits_for(kind)
        if current is None:
            raise ProfileChangeError(
                f"the {base.name} profile raises no alarm on {kind.value}", vital=kind,
                item=_first_item(kind, by_kind.get(kind), delays.get(kind)),
            )
        changed[kind] = _changed_limits(base.name, current, by_kind.get(kind, {}),
                                        delays.get(kind))
    merged = dict(base.limits)
    merged.update(changed)
    return AlarmProfile(base.name, base.description, merged)


def _first_item(kind: VitalKind, values: Mapping[tuple[Direction, Priority], float] | None,
                delay: timedelta | None) -> str:
    if values:
        (direction, priority), value = next(iter(values.items()))
        return limit_item(kind, direction, priority, value)
    return delay_item(kind, (delay or _ZERO).total_seconds())


def _changed_limits(profile: str, current: VitalLimits,
                    values: Mapping[tuple[Direction, Priority], float],
                    delay: timedelta | None) -> VitalLimits:
    kind = current.kind
    slots = {(lim.direction, lim.priority): lim for lim in current.limits}
    new: dict[tuple[Direction, Priority], Limit] = dict(slots)
    for (direction, priority), value in values.items():
        item = limit_item(kind, direction, priority, value)
        old = slots.get((direction, priority))
        if old is None:
            have = ", ".join(f"{d.value}.{p.value}" for d, p in slots) or "none"
            raise ProfileChangeError(
                f"the {profile} profile has no {direction.value}-side limit of {priority.value} "
                f"priority for {kind.value} (it has: {have}); a change keeps the profile's "
                "limits and sets their values", vital=kind, item=item,
            )
        if not math.isfinite(value):
            raise ProfileChangeError("the limit is not a finite number", vital=kind, item=item)
        new[direction, priority] = Limit(direction, value, priority, old.inclusive)
    for (direction, priority), value in values.items():
        _check_band(kind, new, direction, priority, limit_item(kind, direction, priority, value))
    lows = [lim for lim in new.values() if lim.direction is Direction.LOW]
    highs = [lim for lim in new.values() if lim.direction is Direction.HIGH]
    if lows and highs:
        top_low = max(lows, key=lambda lim: lim.value)
        bottom_high = min(highs, key=lambda lim: lim.value)
        if top_low.value >= bottom_high.value:
            changed = top_low if (top_low.direction, top_low.priority) in values else bottom_high
            raise ProfileChangeError(
                f"the low limits ({top_low.describe()}) must stay below the high limits "
                f"({bottom_high.describe()}), or no value is normal", vital=kind,
                item=limit_item(kind, changed.direction, changed.priority, changed.value),
            )
    floor = CRITICAL_FLOOR.get(kind)
    if floor is not None:
        for (direction, priority), value in values.items():
            if direction is not floor.direction:
                continue
            item = limit_item(kind, direction, priority, value)
            if priority is Priority.HIGH and not _at_least_as_strict(new[direction, priority],
                                                                      floor):
                raise ProfileChangeError(
                    f"{kind.value} {floor.describe()} always alarms at high priority (the "
                    f"critical floor); a high-priority low limit must be {floor.value:g} or "
                    "above", vital=kind, item=item,
                )
            if priority is not Priority.HIGH and _at_least_as_strict(floor,
                                                                     new[direction, priority]):
                raise ProfileChangeError(
                    f"{kind.value} {floor.describe()} is always high priority (the critical "
                    f"floor), so a {priority.value}-priority limit there would never sound; "
                    f"set it above {floor.value:g}", vital=kind, item=item,
                )
    delay_value = current.delay if delay is None else delay
    if delay_value < _ZERO:
        raise ProfileChangeError("a delay cannot be negative", vital=kind,
                                 item=delay_item(kind, delay_value.total_seconds()))
    return VitalLimits(kind, tuple(new.values()), delay_value, current.hysteresis)


def _check_band(kind: VitalKind, limits: Mapping[tuple[Direction, Priority], Limit],
                direction: Direction, priority: Priority, item: str) -> None:
    """A limit lies beyond every less severe limit on its side and within every more severe."""
    limit = limits[direction, priority]
    outward = 1 if direction is Direction.HIGH else -1
    word = "above" if direction is Direction.HIGH else "below"
    inward = "below" if direction is Direction.HIGH else "above"
    for other_priority in _RANKS:
        other = limits.get((direction, other_priority))
        if other is None or other_priority is priority:
            continue
        more_severe = other_priority.rank > priority.rank
        delta = (other.value - limit.value) * outward
        if more_severe and delta <= 0:
            raise ProfileChangeError(
                f"a {priority.value}-priority limit must be {inward} the {other_priority.value}-"
                f"priority limit ({other.describe()}), else its band is empty or inside the "
                f"{other_priority.value} band", vital=kind, item=item,
            )
        if not more_severe and delta >= 0:
            raise ProfileChangeError(
                f"a {priority.value}-priority limit must be {word} the {other_priority.value}-"
                f"priority limit ({other.describe()}), else it would sit inside the "
                f"{other_priority.value} band", vital=kind, item=item,
            )


def alarm_profile(settings: Settings) -> AlarmProfile:
    """The profile in force: ``[alarms] profile`` with its ``limits`` and ``delays`` changes.

    Raises ConfigError naming ``alarms.limits`` or ``alarms.delays``, the line that set it and
    why, when a change does not fit the profile (the station refuses to start on it, and
    Settings refuses to save it).
    """
    alarms = settings.alarms
    try:
        base = get_profile(alarms.profile)
    except KeyError as exc:
        raise settings.error_at("alarms", "profile", str(exc.args[0])) from None
    try:
        limits = {(VitalKind(vital), Direction(side), Priority(priority)): value
                  for (vital, side, priority), value in alarms.limit_overrides().items()}
    except ValueError as exc:
        raise settings.error_at("alarms", "limits", str(exc)) from None
    try:
        delays = {VitalKind(vital): timedelta(seconds=seconds)
                  for vital, seconds in alarms.delay_overrides().items()}
    except ValueError as exc:
        raise settings.error_at("alarms", "delays", str(exc)) from None
    try:
        return customised_profile(base, limits, delays)
    except ProfileChangeError as exc:
        key = "limits" if exc.item and "." in exc.item.partition("=")[0] else "delays"
        raise settings.error_at("alarms", key, str(exc)) from None
