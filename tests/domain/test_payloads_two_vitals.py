"""The InHealth fast path's two-vital case (a REST single reading's usual shape) against the
general parser: the two in VitalKind order whatever order they came in, the blood pressure
pair only together and diastolic not above systolic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vitalstation.domain.payloads import (
    DEFAULT_MAX_FUTURE_SKEW,
    _context,
    _inhealth,
    _plain_inhealth,
)
from vitalstation.domain.readings import InputKind

NOW = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)


def parse_both(vitals: dict[str, Any]) -> tuple[Any, Any, dict[str, str]]:
    obj = {"device_id": "MON-1", "timestamp": "2025-11-17T10:30:00Z", **vitals}
    fast = _plain_inhealth(obj, InputKind.REST, NOW, None, "MON-1", UTC,
                           DEFAULT_MAX_FUTURE_SKEW, "raw", "POST x")
    ctx = _context(InputKind.REST, NOW, None, UTC, DEFAULT_MAX_FUTURE_SKEW, "raw", "POST x")
    general, errors = _inhealth(obj, ctx, "MON-1", "expected")
    return fast, general, errors


@pytest.mark.parametrize("vitals", [
    {"heart_rate": 72, "oxygen_saturation": 97},
    {"oxygen_saturation": 97, "heart_rate": 72},
    {"respiratory_rate": 16, "heart_rate": 72.5},
    {"temperature": 98.6, "oxygen_saturation": 97},
    {"blood_pressure_systolic": 120, "blood_pressure_diastolic": 80},
    {"blood_pressure_diastolic": 80, "blood_pressure_systolic": 120},
    {"blood_pressure_diastolic": 80, "blood_pressure_systolic": 80},  # equal: allowed
    {"heart_rate": 72, "oxygen_saturation": 97, "respiratory_rate": None},
])
def test_two_vitals_are_taken_as_the_general_path_builds_them(vitals: dict[str, Any]) -> None:
    fast, general, errors = parse_both(vitals)
    assert not errors
    assert fast is not None and fast == general
    assert fast.measurements == general.measurements  # the same order


@pytest.mark.parametrize("vitals", [
    {"blood_pressure_systolic": 80, "blood_pressure_diastolic": 120},
    {"blood_pressure_diastolic": 120, "blood_pressure_systolic": 80},
    {"blood_pressure_systolic": 120, "heart_rate": 72},  # half a pair
    {"heart_rate": 72, "blood_pressure_diastolic": 80},
    {"heart_rate": 72, "oxygen_saturation": 101},
])
def test_two_vitals_the_general_path_refuses_are_left_to_it(vitals: dict[str, Any]) -> None:
    fast, general, errors = parse_both(vitals)
    assert fast is None and general is None and errors
