"""NEWS2 (RCP 2017): Chart 1 scoring, Chart 3 thresholds, from a patient's latest values.

Every parameter is rounded to the chart's resolution before banding, half up: whole numbers,
and temperature to 0.1 °C (so 35.04 °C scores as 35.0 → 3, and 36.05 °C as 36.1 → 0).

A score is only a score when every parameter is there and fresh. A value older than its limit
is *stale*: the score is then INCOMPLETE and ``total`` is None, never computed from old data.
Consciousness and air/oxygen are entered by a clinician; when never entered they default to
Alert and air, and the result lists them as *assumed*. What the fresh parameters already add up
to is reported as ``minimum_total`` — a lower bound, since no parameter scores below 0 — with
``minimum_risk``, the risk that bound proves: for display ("NEWS2 ≥ 6, incomplete"). The engine
raises and clears NEWS2 alarms on complete scores only; an incomplete score changes nothing.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import NamedTuple

from vitalstation.alarms.model import Priority
from vitalstation.domain.vitals import VitalKind


class Parameter(enum.StrEnum):
    """The seven NEWS2 parameters, in Chart 1's order."""

    RESPIRATION_RATE = "respiration_rate"
    SPO2 = "spo2"
    AIR_OR_OXYGEN = "air_or_oxygen"
    SYSTOLIC_BP = "systolic_bp"
    PULSE = "pulse"
    CONSCIOUSNESS = "consciousness"
    TEMPERATURE = "temperature"


# The measured parameters and the vital each comes from.
MEASURED: Mapping[Parameter, VitalKind] = MappingProxyType({
    Parameter.RESPIRATION_RATE: VitalKind.RESPIRATORY_RATE,
    Parameter.SPO2: VitalKind.SPO2,
    Parameter.SYSTOLIC_BP: VitalKind.SYSTOLIC_BP,
    Parameter.PULSE: VitalKind.HEART_RATE,
    Parameter.TEMPERATURE: VitalKind.TEMPERATURE,
})
PARAMETER_OF_VITAL: Mapping[VitalKind, Parameter] = MappingProxyType(
    {kind: param for param, kind in MEASURED.items()}
)


class Consciousness(enum.StrEnum):
    """ACVPU. Confusion counts as new until shown otherwise (RCP)."""

    ALERT = "A"
    NEW_CONFUSION = "C"
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


class SpO2Scale(enum.IntEnum):
    """Scale 2 only for confirmed hypercapnic respiratory failure with a prescribed 88–92 %."""

    SCALE_1 = 1
    SCALE_2 = 2


class Risk(enum.StrEnum):
    """Chart 3 clinical risk."""

    LOW = "low"  # aggregate 0–4
    LOW_MEDIUM = "low-medium"  # a single parameter scoring 3 ("red score")
    MEDIUM = "medium"  # aggregate 5–6
    HIGH = "high"  # aggregate 7 or more

    @property
    def rank(self) -> int:
        """0 (low) to 3 (high)."""
        return _RISK_RANK[self]


_RISK_RANK = {Risk.LOW: 0, Risk.LOW_MEDIUM: 1, Risk.MEDIUM: 2, Risk.HIGH: 3}

RISK_PRIORITY: Mapping[Risk, Priority | None] = MappingProxyType({
    Risk.LOW: None,
    # Low–medium sits below Chart 3's "medium", so it takes the lowest alarm priority; the red
    # parameter's own limit alarm carries the urgency (e.g. RR >= 25 is HIGH on adult-ward).
    Risk.LOW_MEDIUM: Priority.LOW,
    Risk.MEDIUM: Priority.MEDIUM,  # urgent response threshold
    Risk.HIGH: Priority.HIGH,  # emergency response threshold
})
"""The alarm priority of each risk (no alarm for low)."""


# -- Chart 1 --------------------------------------------------------------------------------------


def round_half_up(value: float, places: int = 0) -> float:
    """Round as a chart reader does (0.5 up), from the shortest repr, not the binary float."""
    value = float(value)
    if places == 0:
        return float(math.floor(value + 0.5))  # exact for whole-number charts
    if round(value, places) == value:
        return value  # already on the chart's grid (most device values): nothing to round
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def score_respiration_rate(rate: float) -> int:
    """RR: ≤8 → 3, 9–11 → 1, 12–20 → 0, 21–24 → 2, ≥25 → 3."""
    rr = round_half_up(rate)
    if rr <= 8:
        return 3
    if rr <= 11:
        return 1
    if rr <= 20:
        return 0
    if rr <= 24:
        return 2
    return 3


def score_spo2_scale1(spo2: float) -> int:
    """SpO2 Scale 1: ≤91 → 3, 92–93 → 2, 94–95 → 1, ≥96 → 0."""
    s = round_half_up(spo2)
    if s <= 91:
        return 3
    if s <= 93:
        return 2
    if s <= 95:
        return 1
    return 0


def score_spo2_scale2(spo2: float, on_oxygen: bool) -> int:
    """SpO2 Scale 2: ≤83 → 3, 84–85 → 2, 86–87 → 1, 88–92 → 0, ≥93 on air → 0;
    on oxygen 93–94 → 1, 95–96 → 2, ≥97 → 3."""
    s = round_half_up(spo2)
    if s <= 83:
        return 3
    if s <= 85:
        return 2
    if s <= 87:
        return 1
    if s <= 92 or not on_oxygen:
        return 0
    if s <= 94:
        return 1
    if s <= 96:
        return 2
    return 3


def score_air_or_oxygen(on_oxygen: bool) -> int:
    """Oxygen → 2, air → 0."""
    return 2 if on_oxygen else 0


def score_systolic_bp(sbp: float) -> int:
    """SBP: ≤90 → 3, 91–100 → 2, 101–110 → 1, 111–219 → 0, ≥220 → 3."""
    s = round_half_up(sbp)
    if s <= 90:
        return 3
    if s <= 100:
        return 2
    if s <= 110:
        return 1
    if s <= 219:
        return 0
    return 3


def score_pulse(rate: float) -> int:
    """Pulse: ≤40 → 3, 41–50 → 1, 51–90 → 0, 91–110 → 1, 111–130 → 2, ≥131 → 3."""
    hr = round_half_up(rate)
    if hr <= 40:
        return 3
    if hr <= 50:
        return 1
    if hr <= 90:
        return 0
    if hr <= 110:
        return 1
    if hr <= 130:
        return 2
    return 3


def score_consciousness(level: Consciousness) -> int:
    """Alert → 0; new confusion, voice, pain, unresponsive → 3."""
    return 0 if level is Consciousness.ALERT else 3


def score_temperature(celsius: float) -> int:
    """Temperature, rounded to 0.1 °C first: ≤35.0 → 3, 35.1–36.0 → 1, 36.1–38.0 → 0,
    38.1–39.0 → 1, ≥39.1 → 2."""
    t = round_half_up(celsius, 1)
    if t <= 35.0:
        return 3
    if t <= 36.0:
        return 1
    if t <= 38.0:
        return 0
    if t <= 39.0:
        return 1
    return 2


def classify(total: int, red_score: bool) -> Risk:
    """Chart 3: ≥7 high, 5–6 medium, a single 3 low–medium, else low."""
    if total >= 7:
        return Risk.HIGH
    if total >= 5:
        return Risk.MEDIUM
    if red_score:
        return Risk.LOW_MEDIUM
    return Risk.LOW


# -- inputs and result ----------------------------------------------------------------------------


class Observed(NamedTuple):
    """A parameter's latest value and when it was measured (or entered). A named tuple: the
    engine keeps one for each reading of a parameter, and a tuple is made in one step."""

    value: float | Consciousness | bool
    at: datetime


@dataclass(frozen=True, slots=True)
class News2Policy:
    """How old a value may be and still count.

    One hour for measured values: NEWS2 scores one set of observations, and a value from an
    older round would make a score that describes nobody's present. Twelve hours for the
    clinician's entries of consciousness and oxygen (NEWS2's minimum observation frequency).
    """

    max_age: Mapping[Parameter, timedelta] = field(default_factory=lambda: MappingProxyType({
        Parameter.RESPIRATION_RATE: timedelta(hours=1),
        Parameter.SPO2: timedelta(hours=1),
        Parameter.SYSTOLIC_BP: timedelta(hours=1),
        Parameter.PULSE: timedelta(hours=1),
        Parameter.TEMPERATURE: timedelta(hours=1),
        Parameter.CONSCIOUSNESS: timedelta(hours=12),
        Parameter.AIR_OR_OXYGEN: timedelta(hours=12),
    }))


@dataclass(frozen=True, slots=True)
class News2Inputs:
    """What is known of one patient: latest measured values and the clinician's entries."""

    measured: Mapping[Parameter, Observed] = field(default_factory=dict)
    consciousness: Observed | None = None  # value: Consciousness
    on_oxygen: Observed | None = None  # value: bool
    scale: SpO2Scale = SpO2Scale.SCALE_1


@dataclass(frozen=True, slots=True)
class News2Result:
    """A NEWS2 evaluation at ``at``.

    ``scores`` has every parameter that counted (fresh or assumed). ``total``/``risk`` are None
    unless ``complete``. ``red_score`` is true when any counted parameter scores 3.
    """

    at: datetime
    scale: SpO2Scale
    scores: Mapping[Parameter, int]
    missing: tuple[Parameter, ...]
    stale: tuple[Parameter, ...]
    assumed: tuple[Parameter, ...]
    red_score: bool
    red_parameters: tuple[Parameter, ...]
    minimum_total: int
    minimum_risk: Risk

    @property
    def complete(self) -> bool:
        """True when no parameter is missing or stale."""
        return not self.missing and not self.stale

    @property
    def total(self) -> int | None:
        """The aggregate score (0–20), or None when incomplete."""
        return self.minimum_total if self.complete else None

    @property
    def risk(self) -> Risk | None:
        """Chart 3 risk, or None when incomplete."""
        return self.minimum_risk if self.complete else None

    def summary(self) -> str:
        """One line for a tile or an alarm message, e.g. ``NEWS2 9 (high)``."""
        if self.complete:
            text = f"NEWS2 {self.minimum_total} ({self.minimum_risk.value})"
        else:
            gaps = [p.value for p in (*self.missing, *self.stale)]
            text = f"NEWS2 ≥ {self.minimum_total} (incomplete: {', '.join(gaps)})"
        if self.red_score:
            text += ", red score: " + ", ".join(p.value for p in self.red_parameters)
        if self.assumed:
            text += " [assumed: " + ", ".join(p.value for p in self.assumed) + "]"
        return text


def compute_news2(
    inputs: News2Inputs, *, now: datetime, policy: News2Policy | None = None
) -> News2Result:
    """Score ``inputs`` at ``now``: Chart 1 per parameter, Chart 3 on the aggregate.

    Called for a patient with each batch of readings that brings them a value, so written
    plainly (no closure, no generator passes over empty lists).
    """
    policy = policy or News2Policy()
    max_age = policy.max_age
    scores: dict[Parameter, int] = {}
    missing: list[Parameter] = []
    stale: list[Parameter] = []
    assumed: list[Parameter] = []

    observed = inputs.on_oxygen
    on_oxygen: bool | None
    if observed is None:
        assumed.append(Parameter.AIR_OR_OXYGEN)
        on_oxygen = False
    elif _is_stale(observed, max_age.get(Parameter.AIR_OR_OXYGEN), now):
        stale.append(Parameter.AIR_OR_OXYGEN)
        on_oxygen = None
    else:
        on_oxygen = bool(observed.value)
    if on_oxygen is not None:
        scores[Parameter.AIR_OR_OXYGEN] = score_air_or_oxygen(on_oxygen)

    observed = inputs.consciousness
    if observed is None:
        assumed.append(Parameter.CONSCIOUSNESS)
        scores[Parameter.CONSCIOUSNESS] = score_consciousness(Consciousness.ALERT)
    elif _is_stale(observed, max_age.get(Parameter.CONSCIOUSNESS), now):
        stale.append(Parameter.CONSCIOUSNESS)
    else:
        scores[Parameter.CONSCIOUSNESS] = score_consciousness(Consciousness(observed.value))

    measured = inputs.measured
    for param in _MEASURED_PARAMETERS:
        observed = measured.get(param)
        if observed is None:
            missing.append(param)
            continue
        if _is_stale(observed, max_age.get(param), now):
            stale.append(param)
            continue
        value = float(observed.value)  # type: ignore[arg-type]
        if param is Parameter.SPO2:
            if inputs.scale is SpO2Scale.SCALE_2:
                if on_oxygen is None:  # scale 2 needs air/oxygen, which is stale
                    continue
                scores[param] = score_spo2_scale2(value, on_oxygen)
            else:
                scores[param] = score_spo2_scale1(value)
        else:
            scores[param] = _SCORERS[param](value)

    ordered = {p: scores[p] for p in _PARAMETERS if p in scores}
    red = tuple(p for p, s in ordered.items() if s == 3)
    minimum_total = sum(ordered.values())
    return News2Result(
        now, inputs.scale, MappingProxyType(ordered), _in_order(missing), _in_order(stale),
        _in_order(assumed), bool(red), red, minimum_total, classify(minimum_total, bool(red)),
    )


def _is_stale(observed: Observed, limit: timedelta | None, now: datetime) -> bool:
    return limit is not None and now - observed.at > limit


def _in_order(params: list[Parameter]) -> tuple[Parameter, ...]:
    """``params`` in chart order (as listed in :class:`Parameter`)."""
    if not params:
        return ()
    return tuple(sorted(params, key=_CHART_ORDER.__getitem__))


_PARAMETERS = tuple(Parameter)
_CHART_ORDER = {param: index for index, param in enumerate(_PARAMETERS)}
_MEASURED_PARAMETERS = tuple(MEASURED)

_SCORERS = {
    Parameter.RESPIRATION_RATE: score_respiration_rate,
    Parameter.SYSTOLIC_BP: score_systolic_bp,
    Parameter.PULSE: score_pulse,
    Parameter.TEMPERATURE: score_temperature,
}
