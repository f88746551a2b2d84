"""validate_readings gives, for every reading of a list, exactly validate_reading's verdict.

Its fast path judges a reading valid only after a valid reading of the same device in the same
call; each case here therefore follows such a reading, so a wrong shortcut shows.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalstation.domain.payloads import (
    EARLIEST_PLAUSIBLE,
    validate_reading,
    validate_readings,
)
from vitalstation.domain.readings import InputKind, Measurement, Reading
from vitalstation.domain.vitals import Unit, VitalKind

NOW = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)
MEASURED = NOW - timedelta(minutes=1)

PLAIN = Reading(
    device_id="DEV001",
    measured_at=MEASURED,
    measurements=(Measurement(VitalKind.HEART_RATE, 75.0, 75.0, Unit.PER_MINUTE),),
    input=InputKind.REST,
    received_at=NOW,
)
TWO = replace(PLAIN, measurements=(
    Measurement(VitalKind.HEART_RATE, 75.0, 75.0, Unit.PER_MINUTE),
    Measurement(VitalKind.SPO2, 97.0, 97.0, Unit.PERCENT),
))


def _one(kind: VitalKind, value: object, unit: Unit) -> Reading:
    return replace(PLAIN, measurements=(Measurement(kind, value, value, unit),))  # type: ignore[arg-type]


CASES = [
    PLAIN,
    TWO,
    replace(PLAIN, signal_quality=90.0, battery_level=50.0, notes="ok"),
    replace(PLAIN, device_id="DEV002"),
    replace(PLAIN, device_id=""),
    replace(PLAIN, device_id="x" * 65),
    replace(PLAIN, device_id=5),
    replace(PLAIN, device_id=" DEV001"),
    replace(PLAIN, measured_at=MEASURED.replace(tzinfo=None)),
    replace(PLAIN, measured_at=MEASURED.astimezone(ZoneInfo("Europe/Paris"))),
    replace(PLAIN, measured_at=NOW + timedelta(minutes=5)),
    replace(PLAIN, measured_at=NOW + timedelta(minutes=5, microseconds=1)),
    replace(PLAIN, measured_at=EARLIEST_PLAUSIBLE),
    replace(PLAIN, measured_at=EARLIEST_PLAUSIBLE - timedelta(microseconds=1)),
    replace(PLAIN, measurements=()),
    _one(VitalKind.HEART_RATE, 0.0, Unit.PER_MINUTE),
    _one(VitalKind.HEART_RATE, 301.0, Unit.PER_MINUTE),
    _one(VitalKind.HEART_RATE, math.nan, Unit.PER_MINUTE),
    _one(VitalKind.HEART_RATE, math.inf, Unit.PER_MINUTE),
    _one(VitalKind.HEART_RATE, 75, Unit.PER_MINUTE),  # an int: the full check takes it
    _one(VitalKind.HEART_RATE, "75", Unit.PER_MINUTE),
    _one(VitalKind.HEART_RATE, 75.0, Unit.MMHG),
    _one(VitalKind.HEART_RATE, 75.0, "/min"),  # type: ignore[arg-type]
    _one(VitalKind.SPO2, 101.0, Unit.PERCENT),
    _one(VitalKind.TEMPERATURE, 37.0, Unit.FAHRENHEIT),
    _one(VitalKind.SYSTOLIC_BP, 120.0, Unit.MMHG),
    _one(VitalKind.DIASTOLIC_BP, 80.0, Unit.MMHG),
    replace(PLAIN, measurements=(Measurement("heart_rate", 75.0, 75.0, Unit.PER_MINUTE),)),  # type: ignore[arg-type]
    replace(PLAIN, measurements=(
        Measurement(VitalKind.HEART_RATE, 75.0, 75.0, Unit.PER_MINUTE),
        Measurement(VitalKind.HEART_RATE, 76.0, 76.0, Unit.PER_MINUTE),
    )),
    replace(PLAIN, measurements=(
        Measurement(VitalKind.SYSTOLIC_BP, 80.0, 80.0, Unit.MMHG),
        Measurement(VitalKind.DIASTOLIC_BP, 90.0, 90.0, Unit.MMHG),
    )),
    replace(PLAIN, measurements=(
        Measurement(VitalKind.SYSTOLIC_BP, 120.0, 120.0, Unit.MMHG),
        Measurement(VitalKind.DIASTOLIC_BP, 80.0, 80.0, Unit.MMHG),
    )),
    replace(PLAIN, measurements=(*TWO.measurements,
                                 Measurement(VitalKind.GLUCOSE, 90.0, 90.0, Unit.MG_PER_DL))),
    replace(PLAIN, signal_quality=101.0),
    replace(PLAIN, signal_quality=math.nan),
    replace(PLAIN, signal_quality=100),
    replace(PLAIN, battery_level=-1.0),
    replace(PLAIN, battery_level=0.0),
    replace(PLAIN, notes="n" * 1000),
    replace(PLAIN, notes="n" * 1001),
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_each_case_after_a_valid_reading_gets_validate_readings_verdict(case: Reading) -> None:
    expected = validate_reading(case, now=NOW)
    found = validate_readings([PLAIN, TWO, case, PLAIN], now=NOW)
    assert found == ({2: expected} if expected else {})


def test_the_skew_is_honoured() -> None:
    ahead = replace(PLAIN, measured_at=NOW + timedelta(minutes=2))
    assert validate_readings([PLAIN, ahead], now=NOW) == {}
    found = validate_readings([PLAIN, ahead], now=NOW, max_future_skew=timedelta(0))
    assert set(found) == {1} and "timestamp" in found[1]


def test_an_empty_list_has_no_problems() -> None:
    assert validate_readings([], now=NOW) == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CASES), min_size=1, max_size=12))
def test_any_mix_gets_each_readings_own_verdict(readings: list[Reading]) -> None:
    expected = {
        index: errors
        for index, reading in enumerate(readings)
        if (errors := validate_reading(reading, now=NOW))
    }
    assert validate_readings(readings, now=NOW) == expected
