"""Limit profiles at every boundary, both sides, with fractions, Celsius and Fahrenheit, zeros."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.alarms.support import band
from vitalstation.alarms import (
    ADULT_WARD,
    BEDSIDE_MONITOR,
    INHEALTH,
    PROFILES,
    AlarmActionError,
    Direction,
    LimitOverride,
    Priority,
    VitalLimits,
    above,
    below,
    get_profile,
)
from vitalstation.domain.vitals import PLAUSIBLE_RANGES, VitalKind, fahrenheit_to_celsius

H, M, L = Priority.HIGH, Priority.MEDIUM, Priority.LOW
HR, SBP, DBP = VitalKind.HEART_RATE, VitalKind.SYSTOLIC_BP, VitalKind.DIASTOLIC_BP
RR, SPO2, TEMP, GLU = (
    VitalKind.RESPIRATORY_RATE, VitalKind.SPO2, VitalKind.TEMPERATURE, VitalKind.GLUCOSE
)


def f(fahrenheit: float) -> float:
    return fahrenheit_to_celsius(fahrenheit)


# -- inhealth: the seed's bands made contiguous ---------------------------------------------------

INHEALTH_CASES = [
    # HR: seed >=150 E | 120-149 D | 100-119 N | 50-99 ok | 40-49 N | 30-39 D | else E
    (HR, 0, H), (HR, 29, H), (HR, 29.9, H), (HR, 30, M), (HR, 39, M), (HR, 39.5, M),
    (HR, 39.6, L), (HR, 40, L), (HR, 49, L), (HR, 49.5, L), (HR, 49.6, None), (HR, 50, None),
    (HR, 99, None), (HR, 99.4, None), (HR, 99.5, L), (HR, 100, L), (HR, 119, L), (HR, 119.4, L),
    (HR, 119.5, M), (HR, 120, M), (HR, 149, M), (HR, 149.4, M), (HR, 149.5, H), (HR, 150, H),
    # SBP: seed >220 E (220 via else) | 180-219 D | 150-179 N | 100-149 ok | 90-100 N (100 ok)
    (SBP, 0, H), (SBP, 79, H), (SBP, 79.9, H), (SBP, 80, M), (SBP, 89, M), (SBP, 89.5, M),
    (SBP, 89.6, L), (SBP, 90, L), (SBP, 99, L), (SBP, 99.9, L), (SBP, 100, None),
    (SBP, 149, None), (SBP, 149.4, None), (SBP, 149.5, L), (SBP, 150, L), (SBP, 179, L),
    (SBP, 179.5, M), (SBP, 180, M), (SBP, 219, M), (SBP, 219.5, H), (SBP, 220, H), (SBP, 221, H),
    # DBP: seed >120 E (120 via else) | 110-119 D | 100-109 N | 50-99 ok | 40-49 N | 30-39 D
    (DBP, 29, H), (DBP, 30, M), (DBP, 39.5, M), (DBP, 40, L), (DBP, 49.5, L), (DBP, 49.6, None),
    (DBP, 99, None), (DBP, 99.5, L), (DBP, 109, L), (DBP, 109.5, M), (DBP, 119, M),
    (DBP, 119.5, H), (DBP, 120, H),
    # RR: seed >50 E (50 via else) | 40-49 D | 30-39 N | 12-29 ok | 9-11 N | 7-8 D | else E
    (RR, 0, H), (RR, 6, H), (RR, 6.5, H), (RR, 7, M), (RR, 8, M), (RR, 8.5, M), (RR, 8.6, L),
    (RR, 9, L), (RR, 11, L), (RR, 11.5, L), (RR, 11.6, None), (RR, 12, None), (RR, 29, None),
    (RR, 29.5, L), (RR, 30, L), (RR, 39, L), (RR, 39.5, M), (RR, 40, M), (RR, 49, M),
    (RR, 49.5, H), (RR, 50, H),
    # SpO2: seed 92-100 ok | 88-<92 N | 81-<88 D | else E (80.5 was a "gap")
    (SPO2, 0, H), (SPO2, 80, H), (SPO2, 80.5, H), (SPO2, 80.99, H), (SPO2, 81, M),
    (SPO2, 87.99, M), (SPO2, 88, L), (SPO2, 91.99, L), (SPO2, 92, None), (SPO2, 100, None),
    # Glucose: high side the seed's; low side fixed (seed made 50-119 a nurse alert)
    (GLU, 1, H), (GLU, 29, H), (GLU, 29.5, H), (GLU, 30, M), (GLU, 49, M), (GLU, 49.5, M),
    (GLU, 49.6, L), (GLU, 50, L), (GLU, 69.9, L), (GLU, 70, None), (GLU, 90, None),
    (GLU, 119, None), (GLU, 119.5, None), (GLU, 120, None), (GLU, 299, None), (GLU, 299.4, None),
    (GLU, 299.5, L), (GLU, 300, L), (GLU, 399, L), (GLU, 399.5, M), (GLU, 400, M), (GLU, 749, M),
    (GLU, 749.5, H), (GLU, 750, H), (GLU, 751, H),
]


def mismatches(profile, cases) -> list[tuple]:
    """Every (kind, value, expected, got) where the profile disagrees with the table."""
    return [
        (kind.value, value, expected, got)
        for kind, value, expected in cases
        if (got := band(profile, kind, value)) is not expected
    ]


def per_vital(cases) -> list:
    """Group a (kind, value, expected) table by vital: one test per vital, all edges in it."""
    grouped: dict[VitalKind, list] = {}
    for case in cases:
        grouped.setdefault(case[0], []).append(case)
    return [pytest.param(rows, id=kind.value) for kind, rows in grouped.items()]


@pytest.mark.parametrize("cases", per_vital(INHEALTH_CASES))
def test_inhealth_bands_are_contiguous_at_every_edge(cases: list) -> None:
    assert mismatches(INHEALTH, cases) == []


INHEALTH_FAHRENHEIT = [
    # seed: >105 E | 102-104.9 D | 100.4-101.9 N | 97-100.4 ok (100.4 N) | 95-96.9 N | 93-94.9 D
    (92.9, H), (92.99, H), (93.0, M), (94.9, M), (94.95, M), (94.96, L), (95.0, L), (96.9, L),
    (96.95, L), (96.96, None), (97.0, None), (98.6, None), (100.3, None), (100.39, None),
    (100.4, L), (101.9, L), (101.94, L), (101.95, M), (102.0, M), (104.9, M), (104.94, M),
    (104.95, H), (105.0, H), (105.1, H),
]


def test_inhealth_temperature_edges_in_fahrenheit() -> None:
    cases = [(TEMP, f(fahrenheit), expected) for fahrenheit, expected in INHEALTH_FAHRENHEIT]
    assert mismatches(INHEALTH, cases) == []


INHEALTH_CELSIUS = [
    (36.1, None),  # the seed's false Emergency: 96.98 °F fell between 96.9 and 97
    (36.0, L),  # 96.8 °F
    (37.0, None),
    (37.9, None),  # 100.22 °F
    (38.0, L),  # exactly 100.4 °F, the seed's nurse-level fever
    (38.8, L),  # 101.84 °F
    (38.9, M),  # 102.02 °F
    (40.5, M),  # 104.9 °F
    (40.6, H),  # 105.08 °F
    (35.0, L),  # exactly 95.0 °F: the nurse band's lower edge
    (34.9, M),  # 94.82 °F
    (33.9, M),  # 93.02 °F
    (33.8, H),  # 92.84 °F
]


def test_inhealth_temperature_in_celsius() -> None:
    cases = [(TEMP, celsius, expected) for celsius, expected in INHEALTH_CELSIUS]
    assert mismatches(INHEALTH, cases) == []
    assert band(INHEALTH, TEMP, 36.1) is None  # the headline case, on its own


def test_inhealth_fahrenheit_edge_compares_exactly_after_conversion() -> None:
    # A °F reading exactly on an edge converts to the very float the edge was built from.
    limits = INHEALTH.limits_for(TEMP)
    assert limits is not None
    edges = {round(lim.value, 6) for lim in limits.limits}
    assert round(f(101.95), 6) in edges and round(f(96.95), 6) in edges


def test_inhealth_every_real_value_has_exactly_one_band() -> None:
    # Sweep each vital's plausible range in small steps: no value is left without a band
    # decision, and bands are monotone (priority never drops moving away from normal).
    for kind, limits in INHEALTH.limits.items():
        plausible = PLAUSIBLE_RANGES[kind]
        steps = int((plausible.high - plausible.low) * 20)
        previous_rank, low_side = None, True
        for i in range(steps + 1):
            value = plausible.low + i / 20
            breach = limits.evaluate(value)
            rank = 0 if breach is None else breach.priority.rank
            if breach is None:
                low_side = False
            if previous_rank is not None:
                if low_side:
                    assert rank <= previous_rank, (kind, value)
                elif breach is not None and breach.direction is Direction.HIGH:
                    assert rank >= previous_rank, (kind, value)
            previous_rank = rank


# -- bedside-monitor: the seed consumer's thresholds on the real value ----------------------------

BEDSIDE_CASES = [
    (HR, 59, M), (HR, 59.9, M), (HR, 60, None), (HR, 100, None), (HR, 100.1, M),
    (HR, 101, M), (HR, 29.9, H), (HR, 0, H),  # the critical floor
    (SPO2, 84.9, M), (SPO2, 85, None), (SPO2, 100, None), (SPO2, 80, M), (SPO2, 79.9, H),
    (SPO2, 0, H),
    (TEMP, f(95.9), M), (TEMP, f(96.0), None), (TEMP, f(101.0), None), (TEMP, f(100.9), None),
    (TEMP, f(101.5), M), (TEMP, f(101.01), M),
    (RR, 5.9, H), (RR, 0, H), (RR, 30, None),  # only the floor on vitals the seed ignored
]


@pytest.mark.parametrize("cases", per_vital(BEDSIDE_CASES))
def test_bedside_monitor_compares_the_real_value(cases: list) -> None:
    assert mismatches(BEDSIDE_MONITOR, cases) == []


def test_bedside_monitor_no_truncation_of_fahrenheit() -> None:
    # The seed did int(101.5) == 101 -> "normal"; 101.5 °F is a fever above its own threshold.
    assert band(BEDSIDE_MONITOR, TEMP, f(101.5)) is M
    assert band(BEDSIDE_MONITOR, TEMP, 38.6) is M  # the same fever sent in °C
    assert band(BEDSIDE_MONITOR, TEMP, f(100.9)) is None
    assert band(BEDSIDE_MONITOR, HR, 100.5) is M  # int(100.5) == 100 passed in the seed


def test_bedside_monitor_spo2_above_110_rule_is_kept_but_unreachable() -> None:
    limits = BEDSIDE_MONITOR.limits_for(SPO2)
    assert limits is not None
    assert limits.evaluate(110.5) is not None
    assert PLAUSIBLE_RANGES[SPO2].high == 100  # the domain refuses it first


# -- adult-ward -----------------------------------------------------------------------------------

ADULT_WARD_CASES = [
    (HR, 0, H), (HR, 40, H), (HR, 40.1, M), (HR, 49.9, M), (HR, 50, None), (HR, 110, None),
    (HR, 110.1, M), (HR, 130, M), (HR, 130.1, H), (HR, 131, H),
    (SPO2, 0, H), (SPO2, 84.9, H), (SPO2, 85, M), (SPO2, 89.9, M), (SPO2, 90, None),
    (RR, 0, H), (RR, 8, H), (RR, 8.1, L), (RR, 11.9, L), (RR, 12, None), (RR, 20, None),
    (RR, 20.1, M), (RR, 24, M), (RR, 24.1, H), (RR, 25, H),
    (SBP, 90, H), (SBP, 90.1, M), (SBP, 100, M), (SBP, 100.1, None), (SBP, 179.9, None),
    (SBP, 180, M), (SBP, 219.9, M), (SBP, 220, H),
    (DBP, 39.9, M), (DBP, 40, None), (DBP, 109.9, None), (DBP, 110, M), (DBP, 120, H),
    (TEMP, 35.0, H), (TEMP, 35.04, H), (TEMP, 35.05, L), (TEMP, 36.0, L), (TEMP, 36.05, None),
    (TEMP, 36.1, None), (TEMP, 38.0, None), (TEMP, 38.04, None), (TEMP, 38.05, L),
    (TEMP, 39.0, L), (TEMP, 39.05, M), (TEMP, 39.9, M), (TEMP, 40.0, H),
    (GLU, 53.9, H), (GLU, 54, M), (GLU, 69.9, M), (GLU, 70, None), (GLU, 180, None),
    (GLU, 180.1, L), (GLU, 300, L), (GLU, 300.1, M), (GLU, 400, M), (GLU, 400.1, H),
]


@pytest.mark.parametrize("cases", per_vital(ADULT_WARD_CASES))
def test_adult_ward_edges(cases: list) -> None:
    assert mismatches(ADULT_WARD, cases) == []


def test_adult_ward_fahrenheit_is_compared_in_celsius() -> None:
    assert band(ADULT_WARD, TEMP, f(98.6)) is None
    assert band(ADULT_WARD, TEMP, f(104.0)) is H  # 40.0 °C
    assert band(ADULT_WARD, TEMP, f(95.0)) is H  # 35.0 °C


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_zero_is_a_value_and_alarms_high_in_every_profile(profile) -> None:
    # The seed's truthiness test read HR 0, RR 0 and SpO2 0 as "missing" and raised nothing.
    assert mismatches(profile, [(HR, 0.0, H), (RR, 0.0, H), (SPO2, 0.0, H)]) == []


def test_weight_raises_no_limit_alarm() -> None:
    for profile in PROFILES.values():
        assert profile.limits_for(VitalKind.WEIGHT) is None


def test_profiles_by_name() -> None:
    assert set(PROFILES) == {"adult-ward", "inhealth", "bedside-monitor"}
    assert get_profile("inhealth") is INHEALTH
    with pytest.raises(KeyError, match="adult-ward"):
        get_profile("icu")


# -- limits and overrides -------------------------------------------------------------------------

def test_limit_sets_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="two high limits"):
        VitalLimits(HR, (above(100, M), above(120, M)))
    with pytest.raises(ValueError, match="above high limit"):
        VitalLimits(HR, (below(120, M), above(100, M)))
    with pytest.raises(ValueError, match="hysteresis"):
        VitalLimits(HR, (above(100, M),), hysteresis=-1)


def test_hysteresis_keeps_an_alarm_until_back_inside_by_the_margin() -> None:
    limits = VitalLimits(HR, (above(100, M),), hysteresis=2.0)
    assert limits.still_breached(Direction.HIGH, 100.5)  # above
    assert limits.still_breached(Direction.HIGH, 99)  # inside, but within 2
    assert not limits.still_breached(Direction.HIGH, 98)  # inside by the margin


AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_override_carries_author_reason_time_and_keeps_the_floor() -> None:
    override = LimitOverride(
        "P1", VitalLimits(HR, (below(10, H), below(45, M), above(150, M))),
        author="dr.jones", reason="athlete, resting HR 42", at=AT,
    )
    assert (override.author, override.at) == ("dr.jones", AT)
    assert override.reason == "athlete, resting HR 42"
    # HR < 10 as HIGH would let asystole-like rates through: the floor (< 30) replaces it.
    assert override.limits.evaluate(25).priority is H  # type: ignore[union-attr]
    assert override.limits.evaluate(40).priority is M  # type: ignore[union-attr]
    assert override.limits.evaluate(46) is None


@pytest.mark.parametrize(("author", "reason"), [("", "why"), ("dr.jones", " ")])
def test_override_needs_author_and_reason(author: str, reason: str) -> None:
    with pytest.raises(AlarmActionError):
        LimitOverride("P1", VitalLimits(HR, (above(120, M),)), author=author, reason=reason, at=AT)
