"""The fast paths' Reading and Measurement are the objects the classes' own __init__ makes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from vitalstation.domain import payloads
from vitalstation.domain.readings import DataSource, InputKind, Measurement, Reading
from vitalstation.domain.vitals import Unit, VitalKind

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_measurement_and_reading_equal_the_classes_own() -> None:
    made = payloads._measurement(VitalKind.TEMPERATURE, 37.0, 98.6, Unit.FAHRENHEIT)
    own = Measurement(VitalKind.TEMPERATURE, 37.0, 98.6, Unit.FAHRENHEIT)
    assert made == own and repr(made) == repr(own) and hash(made) == hash(own)
    assert type(made) is Measurement and made.unit is own.unit

    values = ("DEV1", AT, (own,), InputKind.REST, AT, DataSource.DEVICE, 90.0, 50.0, "n",
              "1.2.3.4", '{"raw":1}')
    reading = payloads._reading(*values)
    expected = Reading(*values)
    assert reading == expected and repr(reading) == repr(expected)
    assert hash(reading) == hash(expected) and reading.raw == expected.raw
    assert [getattr(reading, f.name) for f in dataclasses.fields(Reading)] == list(values)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.device_id = "other"  # type: ignore[misc]


def test_a_class_with_other_fields_is_refused_at_import() -> None:
    with pytest.raises(RuntimeError, match="fields"):
        payloads._check_layout(Measurement, ("kind", "value", "original_value"))
