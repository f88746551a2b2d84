"""The InHealth reading object's fast path (``_plain_inhealth``) against the general parser.

``parse_inhealth_reading`` (REST single readings, file drop) tries the plain case first. The
fast path may decline any object (None: the general path parses it and words any error), but a
reading it does return must be the one the general path builds, field for field, ``raw``
included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalstation.domain.payloads import (
    DEFAULT_MAX_FUTURE_SKEW,
    VITAL_FIELDS,
    PayloadError,
    _context,
    _inhealth,
    _plain_inhealth,
    parse_inhealth_reading,
)
from vitalstation.domain.readings import InputKind, Reading

NOW = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def reading(**fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "device_id": "MON-1", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 72,
    }
    obj.update(fields)
    return {key: value for key, value in obj.items() if value is not ...}


def both(
    obj: object,
    *,
    device_id: str | None = "MON-1",
    zone: tzinfo = UTC,
    input: InputKind = InputKind.REST,
    received_at: datetime = NOW,
    now: datetime | None = None,
) -> tuple[Reading | None, Reading | None, dict[str, str]]:
    """(fast, general, general's errors) for one object."""
    fast = _plain_inhealth(
        obj, input, received_at, now, device_id, zone, DEFAULT_MAX_FUTURE_SKEW, "raw", "POST x",
    )
    ctx = _context(input, received_at, now, zone, DEFAULT_MAX_FUTURE_SKEW, "raw", "POST x")
    if not isinstance(obj, dict):
        return fast, None, {"body": "not an object"}
    general, errors = _inhealth(obj, ctx, device_id, "expected")
    return fast, general, errors


def assert_same(fast: Reading | None, general: Reading | None) -> None:
    assert fast is not None and general is not None
    assert fast == general
    assert fast.raw == general.raw and fast.source_ref == general.source_ref  # raw not in ==
    assert fast.measurements == general.measurements  # the same order
    for mine, theirs in zip(fast.measurements, general.measurements, strict=True):
        assert type(mine.value) is type(theirs.value) is float
        assert type(mine.original_value) is type(theirs.original_value) is float
    assert fast.measured_at.tzinfo is general.measured_at.tzinfo is UTC
    assert fast.received_at.tzinfo is general.received_at.tzinfo is UTC


@pytest.mark.parametrize("obj", [
    reading(),
    reading(device_id=...),  # the key's device
    reading(oxygen_saturation=97, heart_rate=61),  # vitals in any order
    reading(oxygen_saturation=97.5, respiratory_rate=16, heart_rate=...),
    reading(temperature=98.6),  # °F by default, stored as °C
    reading(weight=150),  # lbs by default, stored as kg
    reading(glucose=95),
    reading(blood_pressure_systolic=120, blood_pressure_diastolic=80),
    reading(blood_pressure_diastolic=80, blood_pressure_systolic=80),
    reading(heart_rate=72, oxygen_saturation=None),  # null: not measured
    reading(signal_quality=95, battery_level=87.5),
    reading(signal_quality=None, battery_level=0),
    reading(timestamp="2025-11-17T10:30:00.123Z"),
    reading(timestamp="2025-11-17T10:30:00.123456Z"),
    reading(timestamp="2025-11-17T10:30:00"),
    reading(timestamp="2025-11-17 10:30:00.123"),
    reading(timestamp="2000-01-01T00:00:00Z"),
    reading(timestamp="2025-11-17T12:05:00Z"),  # the edge of the allowed clock skew
    reading(heart_rate=0.0),
    {"heart_rate": 72, "device_id": "MON-1", "timestamp": "2025-11-17T10:30:00Z"},
])
def test_plain_readings_take_the_fast_path(obj: dict[str, Any]) -> None:
    assert_same(*both(obj)[:2])


def test_context_device_zone_input_and_clock_match() -> None:
    assert_same(*both(reading(), device_id=None)[:2])
    assert_same(*both(reading(timestamp="2025-11-17T10:30:00"), device_id=None)[:2])
    assert_same(*both(reading(), input=InputKind.FILE)[:2])
    assert_same(*both(reading(), input=InputKind.MANUAL)[:2])
    later = NOW + timedelta(hours=1)
    assert_same(*both(reading(), received_at=NOW.astimezone(PARIS), now=later)[:2])
    assert_same(*both(reading(timestamp="2025-11-17T10:30:00Z"), zone=PARIS)[:2])


@pytest.mark.parametrize("obj", [
    [reading()],
    reading(heart_rate=True),
    reading(heart_rate="72"),
    reading(heart_rate=10**400),
    reading(heart_rate=float("nan")),
    reading(heart_rate=float("inf")),
    reading(heart_rate=351),
    reading(heart_rate=-1),
    reading(heart_rate=None),  # no vital at all
    reading(heart_rate=...),
    reading(temperature=37),  # Celsius without a unit: the general path's hint
    reading(temperature=37, temperature_unit="C"),
    reading(weight=70, weight_unit="kg"),
    reading(glucose=5.5, glucose_unit="mmol/L"),
    reading(notes="after a walk"),
    reading(patient_id="P1"),  # a field the format does not have
    reading(blood_pressure_systolic=120),
    reading(blood_pressure_diastolic=80),
    reading(blood_pressure_systolic=80, blood_pressure_diastolic=120),
    reading(signal_quality=101),
    reading(battery_level=-1),
    reading(battery_level="90"),
    reading(signal_quality=True),
    reading(device_id="MON-2"),
    reading(device_id=""),
    reading(device_id=" MON-1"),
    reading(device_id=12),
    reading(timestamp="2025-11-17T10:30:00+01:00"),
    reading(timestamp="2025-11-17T10:30:00+00:00"),
    reading(timestamp="2025-11-17t10:30:00Z"),
    reading(timestamp="2025-11-17T10:30:00z"),
    reading(timestamp="2025-11-17T10:30:00.1234Z"),
    reading(timestamp="2025-11-17T10:30:00,123Z"),
    reading(timestamp=" 2025-11-17T10:30:00Z"),
    reading(timestamp="2025-11-17T10:30:00Z "),
    reading(timestamp="2025-11-17T10:30Z"),
    reading(timestamp="2025-13-17T10:30:00Z"),
    reading(timestamp="2025-11-17T10:30:0\uff15Z"),
    reading(timestamp="1999-12-31T23:59:59Z"),
    reading(timestamp="2025-11-17T12:05:01Z"),  # past the clock skew
    reading(timestamp=1763375400),
    reading(timestamp=...),
])
def test_anything_else_is_left_to_the_general_path(obj: object) -> None:
    assert both(obj)[0] is None


def test_a_naive_device_clock_in_another_zone_is_left_to_the_general_path() -> None:
    assert both(reading(timestamp="2025-11-17T10:30:00"), zone=PARIS)[0] is None


def test_public_parser_gives_the_general_errors_when_the_fast_path_declines() -> None:
    with pytest.raises(PayloadError) as info:
        parse_inhealth_reading(reading(heart_rate=400, signal_quality=101),
                               input=InputKind.REST, received_at=NOW, device_id="MON-1")
    assert set(info.value.errors) == {"heart_rate", "signal_quality"}
    with pytest.raises(PayloadError) as info:
        parse_inhealth_reading(reading(temperature=37), input=InputKind.REST, received_at=NOW)
    assert 'send temperature_unit "C"' in info.value.errors["temperature"]
    parsed = parse_inhealth_reading(reading(), input=InputKind.REST, received_at=NOW,
                                    device_id="MON-1", raw="raw", source_ref="POST x")
    assert_same(parsed, both(reading())[1])


def test_naive_received_at_is_still_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_inhealth_reading(reading(), input=InputKind.REST,
                               received_at=NOW.replace(tzinfo=None))


_numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 20, 46, 68, 80, 95.0, 98.6, 100, 100.0000001, 120, 350, 650, 1433]),
    st.text(max_size=4),
)
_EARLY, _LATE = datetime(1990, 1, 1), datetime(2030, 1, 1)  # noqa: DTZ001
_stamps = st.one_of(
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + st_suffix(d)
    ),
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(lambda d: d.isoformat(sep=" ")),
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(
        lambda d: d.isoformat(timespec="milliseconds") + "Z"
    ),
    st.text(max_size=30),
)


def st_suffix(moment: datetime) -> str:
    return ("Z", "", ".123456Z", "+00:00")[moment.second % 4]


_fields = st.sampled_from([*VITAL_FIELDS, "signal_quality", "battery_level", "notes",
                           "temperature_unit", "extra"])


@settings(max_examples=500, deadline=None)
@given(
    vitals=st.dictionaries(_fields, _numbers, max_size=5),
    stamp=_stamps,
    own=st.one_of(st.just(...), st.just("MON-1"), st.text(max_size=8), st.integers()),
    context=st.sampled_from(["MON-1", None]),
    zone=st.sampled_from([UTC, PARIS]),
)
def test_fast_path_never_disagrees(
    vitals: dict[str, object], stamp: str, own: object, context: str | None, zone: tzinfo
) -> None:
    obj = {"device_id": own, "timestamp": stamp, **vitals}
    if own is ...:
        del obj["device_id"]
    fast, general, _ = both(obj, device_id=context, zone=zone, now=NOW + timedelta(days=3650))
    if fast is not None:
        assert_same(fast, general)


_BATCH_ITEMS = [
    reading(),
    reading(device_id=...),  # inherits the batch's device
    reading(device_id="MON-2"),  # another device: an error for this reading
    reading(heart_rate="72"),  # a string: the general path's error
    reading(temperature=98.6, temperature_unit="F"),  # a unit: the general path
    reading(blood_pressure_systolic=120, blood_pressure_diastolic=80, oxygen_saturation=97),
    reading(timestamp=...),  # missing
    reading(timestamp="2025-11-17T10:30:00.123Z", battery_level=15, signal_quality=40),
    reading(heart_rate=None, oxygen_saturation=None),  # no vital
    "not an object",
]


@pytest.mark.parametrize("top_id", ["MON-1", None])
@pytest.mark.parametrize("context_id", ["MON-1", None])
def test_a_batch_parses_the_same_with_and_without_the_fast_path(
    monkeypatch: pytest.MonkeyPatch, top_id: str | None, context_id: str | None
) -> None:
    from vitalstation.domain import payloads
    from vitalstation.domain.payloads import parse_inhealth_batch

    body: dict[str, Any] = {"readings": list(_BATCH_ITEMS)}
    if top_id is not None:
        body["device_id"] = top_id

    def parse():
        try:
            return parse_inhealth_batch(body, input=InputKind.REST, received_at=NOW,
                                        device_id=context_id, raw="raw", source_ref="POST b")
        except PayloadError as exc:
            return ("refused", exc.errors)

    taken: list[Reading] = []
    fast_ways = ("_plain_one_vital", "_plain_inhealth")  # a batch's one-vital way, then any

    def watched(way: Any) -> Any:
        def watching(*args: Any) -> Reading | None:
            found = way(*args)
            if found is not None:
                taken.append(found)
            return found
        return watching

    for name in fast_ways:
        monkeypatch.setattr(payloads, name, watched(getattr(payloads, name)))
    fast = parse()
    for name in fast_ways:
        monkeypatch.setattr(payloads, name, lambda *args: None)
    general = parse()
    assert fast == general
    if top_id is not None or context_id is not None:
        # The plain items (0, 1: inheriting the id, 5, 7) took a fast way.
        assert len(taken) == 4
        assert {r for _, r in fast.readings} >= set(taken)
