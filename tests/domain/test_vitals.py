"""Unit conversions, unit spellings and plausibility ranges, with exact figures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitalstation.domain.vitals import (
    ACCEPTED_UNITS,
    CANONICAL_UNIT,
    KG_PER_POUND,
    PERCENT_RANGE,
    PLAUSIBLE_RANGES,
    UNIT_ALIASES,
    PlausibleRange,
    Unit,
    VitalKind,
    celsius_to_fahrenheit,
    fahrenheit_to_celsius,
    from_canonical,
    kilograms_to_pounds,
    mg_per_dl_to_mmol_per_l,
    mmol_per_l_to_mg_per_dl,
    parse_unit,
    pounds_to_kilograms,
    to_canonical,
)

# --- temperature ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fahrenheit", "celsius"),
    [(98.6, 37.0), (212.0, 100.0), (32.0, 0.0), (-40.0, -40.0)],
)
def test_temperature_converts_both_ways_exactly(fahrenheit: float, celsius: float) -> None:
    assert fahrenheit_to_celsius(fahrenheit) == celsius
    assert celsius_to_fahrenheit(celsius) == fahrenheit


def test_fever_in_fahrenheit_keeps_its_fraction() -> None:
    # The seed's consumer int()-truncated 101.5 to 101 (38.33 °C); the real value is 38.61 °C.
    assert fahrenheit_to_celsius(101.5) == pytest.approx(38.611111111111, abs=1e-12)
    assert celsius_to_fahrenheit(fahrenheit_to_celsius(101.5)) == 101.5


# --- weight ---------------------------------------------------------------------------------------


def test_pound_is_the_exact_avoirdupois_factor() -> None:
    assert KG_PER_POUND == 0.45359237
    assert pounds_to_kilograms(1.0) == 0.45359237
    assert kilograms_to_pounds(0.45359237) == 1.0


def test_weight_converts_both_ways() -> None:
    assert pounds_to_kilograms(150.0) == pytest.approx(68.0388555, abs=1e-12)
    assert kilograms_to_pounds(68.0388555) == pytest.approx(150.0, abs=1e-12)
    assert kilograms_to_pounds(100.0) == pytest.approx(220.46226218, abs=1e-8)


# --- glucose --------------------------------------------------------------------------------------


def test_glucose_converts_both_ways() -> None:
    assert mmol_per_l_to_mg_per_dl(5.5) == pytest.approx(99.0858, abs=1e-9)
    assert mg_per_dl_to_mmol_per_l(99.0858) == pytest.approx(5.5, abs=1e-12)
    assert mmol_per_l_to_mg_per_dl(1.0) == 18.0156


# --- to_canonical / from_canonical ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "unit", "expected"),
    [
        (VitalKind.TEMPERATURE, 98.6, Unit.FAHRENHEIT, 37.0),
        (VitalKind.TEMPERATURE, 36.1, Unit.CELSIUS, 36.1),
        (VitalKind.WEIGHT, 150.0, Unit.POUND, 68.0388555),
        (VitalKind.WEIGHT, 70.0, Unit.KILOGRAM, 70.0),
        (VitalKind.GLUCOSE, 5.5, Unit.MMOL_PER_L, 99.0858),
        (VitalKind.GLUCOSE, 95.0, Unit.MG_PER_DL, 95.0),
        (VitalKind.HEART_RATE, 75, Unit.PER_MINUTE, 75.0),
        (VitalKind.RESPIRATORY_RATE, 16, Unit.PER_MINUTE, 16.0),
        (VitalKind.SYSTOLIC_BP, 120, Unit.MMHG, 120.0),
        (VitalKind.DIASTOLIC_BP, 80, Unit.MMHG, 80.0),
        (VitalKind.SPO2, 98, Unit.PERCENT, 98.0),
    ],
)
def test_to_canonical_converts_every_accepted_unit(
    kind: VitalKind, value: float, unit: Unit, expected: float
) -> None:
    result = to_canonical(kind, value, unit)
    assert isinstance(result, float)
    assert result == pytest.approx(expected, abs=1e-9)
    assert from_canonical(kind, result, unit) == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize(
    ("kind", "unit"),
    [
        (VitalKind.HEART_RATE, Unit.CELSIUS),
        (VitalKind.TEMPERATURE, Unit.KILOGRAM),
        (VitalKind.WEIGHT, Unit.MG_PER_DL),
        (VitalKind.GLUCOSE, Unit.POUND),
        (VitalKind.SPO2, Unit.PER_MINUTE),
        (VitalKind.SYSTOLIC_BP, Unit.PERCENT),
    ],
)
def test_to_canonical_refuses_a_unit_of_another_vital(kind: VitalKind, unit: Unit) -> None:
    with pytest.raises(ValueError, match="is not a unit of"):
        to_canonical(kind, 1.0, unit)
    with pytest.raises(ValueError, match="is not a unit of"):
        from_canonical(kind, 1.0, unit)


def test_every_accepted_unit_converts_and_the_canonical_one_comes_first() -> None:
    for kind, units in ACCEPTED_UNITS.items():
        assert units[0] == CANONICAL_UNIT[kind]
        for unit in units:
            assert math.isfinite(to_canonical(kind, 50.0, unit))


# --- unit spellings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("F", Unit.FAHRENHEIT), ("f", Unit.FAHRENHEIT), ("°F", Unit.FAHRENHEIT),
        ("Fahrenheit", Unit.FAHRENHEIT), ("[degF]", Unit.FAHRENHEIT),
        ("C", Unit.CELSIUS), ("c", Unit.CELSIUS), ("°C", Unit.CELSIUS), ("Cel", Unit.CELSIUS),
        ("celsius", Unit.CELSIUS),
        ("lbs", Unit.POUND), ("LB", Unit.POUND), ("pounds", Unit.POUND), ("[lb_av]", Unit.POUND),
        ("kg", Unit.KILOGRAM), ("Kilograms", Unit.KILOGRAM),
        ("mg/dL", Unit.MG_PER_DL), ("MG/DL", Unit.MG_PER_DL), ("mmol/L", Unit.MMOL_PER_L),
        ("bpm", Unit.PER_MINUTE), ("/min", Unit.PER_MINUTE),
        ("mmHg", Unit.MMHG), ("mm[Hg]", Unit.MMHG), ("%", Unit.PERCENT),
        ("  kg  ", Unit.KILOGRAM),
    ],
)
def test_parse_unit_knows_the_usual_spellings(text: str, unit: Unit) -> None:
    assert parse_unit(text) is unit


@pytest.mark.parametrize("text", ["K", "kelvin", "stone", "", "mg", "g/L"])
def test_parse_unit_returns_none_for_unknown_spellings(text: str) -> None:
    assert parse_unit(text) is None


def test_every_alias_is_lower_case() -> None:
    assert all(alias == alias.lower() for alias in UNIT_ALIASES)


# --- plausibility ranges --------------------------------------------------------------------------


def test_every_vital_has_a_range_and_a_canonical_unit() -> None:
    assert set(PLAUSIBLE_RANGES) == set(VitalKind) == set(CANONICAL_UNIT)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (VitalKind.HEART_RATE, 0.0),  # asystole must reach the alarm engine
        (VitalKind.RESPIRATORY_RATE, 0.0),  # apnoea
        (VitalKind.SPO2, 40.0),  # profound desaturation
        (VitalKind.TEMPERATURE, 25.0),  # deep hypothermia
    ],
)
def test_critical_values_are_plausible(kind: VitalKind, value: float) -> None:
    assert PLAUSIBLE_RANGES[kind].contains(value)


def test_range_bounds_are_inclusive_and_non_finite_is_out() -> None:
    rng = PlausibleRange(0, 100)
    assert rng.contains(0)
    assert rng.contains(100)
    assert not rng.contains(-0.001)
    assert not rng.contains(100.001)
    assert not rng.contains(math.nan)
    assert not rng.contains(math.inf)
    assert PERCENT_RANGE == rng


# --- properties -----------------------------------------------------------------------------------

_body_temperatures = st.floats(min_value=-100.0, max_value=300.0, allow_nan=False)


@given(_body_temperatures)
def test_fahrenheit_celsius_round_trip(fahrenheit: float) -> None:
    back = celsius_to_fahrenheit(fahrenheit_to_celsius(fahrenheit))
    assert back == pytest.approx(fahrenheit, abs=1e-9)


@given(st.floats(min_value=0.0, max_value=5000.0, allow_nan=False))
def test_pound_kilogram_round_trip(pounds: float) -> None:
    assert kilograms_to_pounds(pounds_to_kilograms(pounds)) == pytest.approx(pounds, rel=1e-12)


@given(st.floats(min_value=0.0, max_value=200.0, allow_nan=False))
def test_glucose_round_trip(mmol: float) -> None:
    assert mg_per_dl_to_mmol_per_l(mmol_per_l_to_mg_per_dl(mmol)) == pytest.approx(mmol, rel=1e-12)


@given(st.sampled_from(list(VitalKind)), st.floats(min_value=-1e6, max_value=1e6))
def test_from_canonical_inverts_to_canonical(kind: VitalKind, value: float) -> None:
    for unit in ACCEPTED_UNITS.get(kind, (CANONICAL_UNIT[kind],)):
        again = to_canonical(kind, from_canonical(kind, value, unit), unit)
        assert again == pytest.approx(value, rel=1e-9, abs=1e-9)
