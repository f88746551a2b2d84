"""``parse_inhealth_readings`` (every batch's parser) against the general way of each reading.

The batch parser builds the usual reading (one vital, a timestamp, at most the batch's own
device id) on a way of its own (``_plain_one_vital``), and other plain readings on another
(``_plain_inhealth``). Whatever the batch, it must give what the general way (``_inhealth``
for every reading, both fast ways turned off) gives: the same readings field for field
(``raw`` included) at the same indexes, the same errors, the same refusals. And
``parse_inhealth_batch`` (MQTT, Kinesis, the file drop) gives the same readings, each paired
with its index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalstation.domain import payloads
from vitalstation.domain.payloads import (
    VITAL_FIELDS,
    BatchParse,
    BatchReadings,
    PayloadError,
    parse_inhealth_batch,
    parse_inhealth_readings,
)
from vitalstation.domain.readings import InputKind

NOW = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def item(**fields: Any) -> Any:
    obj: dict[str, Any] = {"timestamp": "2025-11-17T10:30:00Z", "heart_rate": 72}
    obj.update(fields)
    return {key: value for key, value in obj.items() if value is not ...}


@contextmanager
def fast_ways_off() -> Iterator[None]:
    """The batch parsers with neither fast way: every reading goes the general way."""
    saved = payloads._plain_one_vital, payloads._plain_inhealth
    payloads._plain_one_vital = payloads._plain_inhealth = lambda *args: None
    try:
        yield
    finally:
        payloads._plain_one_vital, payloads._plain_inhealth = saved


def both(body: object, **options: Any) -> tuple[Any, Any]:
    """(the general way's answer as ``parse_inhealth_batch`` gives it, parse_inhealth_readings'
    answer), a refusal as its errors; ``parse_inhealth_batch`` with the fast ways on is checked
    to answer as the general way."""
    options = {"input": InputKind.REST, "received_at": NOW, "raw": "raw",
               "source_ref": "POST b", **options}

    def answer(parse: Callable[..., Any]) -> Any:
        try:
            return parse(body, **options)
        except PayloadError as exc:
            return ("refused", exc.errors, exc.message)

    with fast_ways_off():
        general = answer(parse_inhealth_batch)
    assert answer(parse_inhealth_batch) == general
    return general, answer(parse_inhealth_readings)


def assert_same(
    batch: BatchParse | tuple[Any, ...], listed: BatchReadings | tuple[Any, ...]
) -> None:
    if isinstance(batch, tuple):
        assert listed == batch
        return
    assert isinstance(listed, BatchReadings)
    indexes = listed.indexes if listed.indexes is not None else range(len(listed.readings))
    assert list(zip(indexes, listed.readings, strict=True)) == batch.readings
    if listed.indexes is None:
        assert not listed.errors
    for (_, theirs), mine in zip(batch.readings, listed.readings, strict=True):
        assert mine.raw == theirs.raw and mine.source_ref == theirs.source_ref  # raw not in ==
        assert mine.measurements == theirs.measurements
        for m, t in zip(mine.measurements, theirs.measurements, strict=True):
            assert type(m.value) is type(t.value) is float
            assert type(m.original_value) is type(t.original_value)
        assert mine.measured_at.tzinfo is theirs.measured_at.tzinfo is UTC
        assert mine.received_at.tzinfo is UTC
        assert mine.data_source is theirs.data_source and mine.input is theirs.input
    assert listed.errors == batch.errors
    assert listed.total == batch.total
    assert listed.device_id == batch.device_id


_ITEMS = [
    item(),
    item(device_id="MON-1"),  # the batch's own device, named again
    item(device_id="MON-2"),  # another device: an error for this reading
    item(device_id=None),  # null: the batch's device
    item(heart_rate="72"),  # a string
    item(heart_rate=True),
    item(heart_rate=400),  # out of range
    item(heart_rate=72.5),
    item(heart_rate=None, oxygen_saturation=97),
    item(heart_rate=None),  # no vital
    item(temperature=98.6),  # converted from °F
    item(temperature=37),  # Celsius without a unit: the general path's hint
    item(weight=150),
    item(temperature=98.6, temperature_unit="F"),  # a unit: not the one-vital way
    item(blood_pressure_systolic=120, blood_pressure_diastolic=80),
    item(blood_pressure_systolic=120),  # the pair's other half missing
    item(oxygen_saturation=97),  # two vitals
    item(signal_quality=40, battery_level=15),
    item(notes="after a walk"),
    item(patient_id="P1"),  # a field the format does not have
    item(timestamp=...),  # missing
    item(timestamp=None),
    item(timestamp=1763375400),
    item(timestamp="2025-11-17T10:30:00.123Z"),
    item(timestamp="2025-11-17T10:30:00.123456Z"),
    item(timestamp="2025-11-17T10:30:00"),
    item(timestamp="2025-11-17 10:30:00.123"),
    item(timestamp="2025-11-17t10:30:00Z"),
    item(timestamp="2025-11-17T10:30:00+01:00"),
    item(timestamp="2025-11-17T10:30:00+00:00"),
    item(timestamp="2025-11-17T10:30:00.1234Z"),
    item(timestamp="2025-11-17T10:30:0\uff15Z"),
    item(timestamp="2025-11-17T10-30-00Z"),
    item(timestamp="2025-11-17"),
    item(timestamp=""),
    item(timestamp="1999-12-31T23:59:59Z"),
    item(timestamp="2000-01-01T00:00:00Z"),
    item(timestamp="2025-11-17T12:05:00Z"),  # the edge of the allowed clock skew
    item(timestamp="2025-11-17T12:05:01Z"),  # past it
    "not an object",
    [item()],
    None,
]


@pytest.mark.parametrize("index", range(len(_ITEMS)))
@pytest.mark.parametrize("top", ["MON-1", ...])
def test_each_kind_of_reading_parses_the_same(index: int, top: object) -> None:
    body: dict[str, Any] = {"readings": [item(), _ITEMS[index], item(heart_rate=61)]}
    if top is not ...:
        body["device_id"] = top
    assert_same(*both(body, device_id="MON-1"))
    assert_same(*both(body))


def test_a_batch_of_every_kind_parses_the_same() -> None:
    body = {"device_id": "MON-1", "readings": list(_ITEMS)}
    batch, listed = both(body)
    assert_same(batch, listed)
    assert listed.errors and listed.indexes is not None


def test_a_batch_without_errors_has_no_index_list() -> None:
    body = {"device_id": "MON-1", "readings": [item(heart_rate=60 + i) for i in range(5)]}
    batch, listed = both(body)
    assert_same(batch, listed)
    assert listed.indexes is None and len(listed.readings) == 5


@pytest.mark.parametrize("body", [
    [],
    "batch",
    {"readings": []},
    {"device_id": "MON-1"},
    {"device_id": "MON-1", "readings": {"0": item()}},
    {"device_id": "MON-1", "readings": [item()] * 4},  # over max_readings
    {"device_id": "", "readings": [item()]},
    {"device_id": 7, "readings": [item()]},
    {"device_id": "MON-2", "readings": [item()]},  # not the expected device
    {"readings": [item(), item(device_id="MON-1")]},  # no device for reading 0
])
def test_refusals_of_the_whole_batch_are_the_same(body: object) -> None:
    for context in (None, "MON-1"):
        assert_same(*both(body, device_id=context, max_readings=3))


def test_clocks_zones_and_inputs_match() -> None:
    body = {"device_id": "MON-1", "readings": [
        item(), item(timestamp="2025-11-17T10:30:00"), item(timestamp="2025-11-17T13:00:00Z"),
    ]}
    for options in (
        {"input": InputKind.FILE},
        {"input": InputKind.MANUAL},
        {"received_at": NOW.astimezone(PARIS)},
        {"now": NOW + timedelta(hours=2)},
        {"naive_zone": PARIS},
        {"max_future_skew": timedelta(hours=2)},
    ):
        assert_same(*both(body, **options))


def test_the_usual_reading_does_not_need_the_general_ways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("not the one-vital way")

    monkeypatch.setattr(payloads, "_plain_inhealth", refuse)
    monkeypatch.setattr(payloads, "_inhealth", refuse)
    body = {"device_id": "MON-1", "readings": [
        item(), item(device_id="MON-1"), item(heart_rate=None, temperature=98.6),
        item(timestamp="2025-11-17 10:30:00.123"),
    ]}
    listed = parse_inhealth_readings(body, input=InputKind.REST, received_at=NOW)
    assert len(listed.readings) == 4 and listed.indexes is None


_numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 20, 46, 68, 80, 95.0, 98.6, 100, 100.0000001, 120, 350, 650]),
    st.text(max_size=3),
)
_EARLY, _LATE = datetime(1990, 1, 1), datetime(2030, 1, 1)  # noqa: DTZ001
_stamps = st.one_of(
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + ("Z", "", ".123456Z", "+00:00")[d.second % 4]
    ),
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(lambda d: d.isoformat(sep=" ")),
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(
        lambda d: d.isoformat(timespec="milliseconds") + "Z"
    ),
    st.text(max_size=30),
)
_fields = st.sampled_from([*VITAL_FIELDS, "signal_quality", "battery_level", "notes",
                           "temperature_unit", "extra"])
_items = st.builds(
    lambda vitals, stamp, own: {
        **({} if own is ... else {"device_id": own}), "timestamp": stamp, **vitals
    },
    st.dictionaries(_fields, _numbers, max_size=3),
    _stamps,
    st.one_of(st.just(...), st.just("MON-1"), st.just("MON-2"), st.none(), st.integers()),
)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.one_of(_items, st.integers()), min_size=1, max_size=6),
    top=st.sampled_from(["MON-1", ...]),
    context=st.sampled_from(["MON-1", None]),
    zone=st.sampled_from([UTC, PARIS]),
)
def test_never_disagrees(
    items: list[object], top: object, context: str | None, zone: tzinfo
) -> None:
    body: dict[str, Any] = {"readings": items}
    if top is not ...:
        body["device_id"] = top
    assert_same(*both(body, device_id=context, naive_zone=zone, now=NOW + timedelta(days=3650)))
