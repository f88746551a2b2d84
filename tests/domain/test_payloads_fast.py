"""The bedside fast path (``parse_plain_bedside``) against the general parser it stands in for.

The fast path may decline any message (None: the general path parses it), but a reading it
does return must be the one the general path builds, field for field, ``raw`` included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalstation.domain import payloads
from vitalstation.domain.payloads import (
    BEDSIDE_DATATYPES,
    DEFAULT_MAX_FUTURE_SKEW,
    PayloadError,
    _bedside,
    _context,
    parse_bedside_message,
    parse_payload,
    parse_plain_bedside,
)
from vitalstation.domain.readings import InputKind, Reading

NOW = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def message(**fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "deviceid": "BSM_G101", "timestamp": "2025-11-17 10:23:45.123456",
        "datatype": "HeartRate", "value": 85,
    }
    obj.update(fields)
    return obj


def both(
    obj: dict[str, Any],
    *,
    device_id: str | None = None,
    zone: tzinfo = UTC,
    input: InputKind = InputKind.MQTT,
    received_at: datetime = NOW,
    now: datetime | None = None,
) -> tuple[Reading | None, Reading | None, dict[str, str]]:
    """(fast, general, general's errors) for one message."""
    fast = parse_plain_bedside(
        obj, input=input, received_at=received_at, now=now, device_id=device_id,
        naive_zone=zone, max_future_skew=DEFAULT_MAX_FUTURE_SKEW, raw="raw", source_ref="topic",
    )
    ctx = _context(input, received_at, now, zone, DEFAULT_MAX_FUTURE_SKEW, "raw", "topic")
    general, errors = _bedside(obj, ctx, device_id)
    return fast, general, errors


def assert_same(fast: Reading | None, general: Reading | None) -> None:
    assert fast is not None and general is not None
    assert fast == general
    assert fast.raw == general.raw  # not part of ==
    assert [type(m.value) for m in fast.measurements] == [float]
    assert [type(m.original_value) for m in fast.measurements] == [float]


@pytest.mark.parametrize("datatype", BEDSIDE_DATATYPES)
def test_publisher_spellings_take_the_fast_path(datatype: str) -> None:
    value = {"Temperature": 101.5, "Weight": 150, "Glucose": 95, "SPO2": 97}.get(datatype, 80)
    fast, general, _ = both(message(datatype=datatype, value=value))
    assert_same(fast, general)


@pytest.mark.parametrize("obj", [
    message(timestamp="2025-11-17 10:23:45"),
    message(timestamp="2025-11-17T10:23:45.000001"),
    message(datatype="heart_rate".replace("_", "")),
    message(datatype="spo2", value=100),
    message(value=0),
    message(value=349.5),
    message(datatype="Temperature", value=68.0),
    message(timestamp="2000-01-01 00:00:00"),
    message(timestamp="2025-11-17 12:05:00"),  # the edge of the allowed clock skew
])
def test_plain_variants_take_the_fast_path(obj: dict[str, Any]) -> None:
    assert_same(*both(obj)[:2])


def test_zone_device_id_override_and_received_time_match() -> None:
    assert_same(*both(message(), zone=PARIS)[:2])
    assert_same(*both(message(), device_id="BED-07")[:2])
    assert_same(*both(message(deviceid=12), device_id="BED-07")[:2])
    assert_same(*both(message(), input=InputKind.MANUAL)[:2])
    later = NOW + timedelta(hours=1)
    assert_same(*both(message(), received_at=NOW.astimezone(PARIS), now=later)[:2])


@pytest.mark.parametrize("obj", [
    message(value=True),
    message(value="85"),
    message(value=351),
    message(value=-1),
    message(value=10**400),
    message(value=float("nan")),
    message(value=float("inf")),
    message(datatype="Temperature", value=37),  # Celsius without a unit: the hint
    message(datatype="Pulse?"),
    message(datatype=" HeartRate"),  # normalised by the general path, not the fast one
    message(deviceid=""),
    message(deviceid=" BSM"),
    message(deviceid="x" * 65),
    message(deviceid=12),
    message(deviceid=None),
    message(timestamp="2025-11-17 10:23:45Z"),
    message(timestamp="2025-11-17 10:23:45+01:00"),
    message(timestamp="2025-11-17 10:23:45,123456"),
    message(timestamp=" 2025-11-17 10:23:45"),
    message(timestamp="2025-11-17 10:23"),
    message(timestamp="2025-13-17 10:23:45"),
    message(timestamp="2025-11-17 10:23:4\uff15"),
    message(timestamp="1999-12-31 23:59:59"),
    message(timestamp="2025-11-17 12:05:01"),  # past the clock skew
    message(timestamp=1763375025),
    message(unit="C", datatype="Temperature", value=37),
    message(signal_quality=90),
    {"deviceid": "BSM_G101", "timestamp": "2025-11-17 10:23:45", "datatype": "HeartRate"},
])
def test_anything_else_is_left_to_the_general_path(obj: dict[str, Any]) -> None:
    assert both(obj)[0] is None


def test_public_parsers_give_the_general_errors_when_the_fast_path_declines() -> None:
    with pytest.raises(PayloadError) as info:
        parse_bedside_message(message(value=400), input=InputKind.MQTT, received_at=NOW)
    assert set(info.value.errors) == {"value"}
    parsed = parse_payload(message(value=400), input=InputKind.MQTT, received_at=NOW)
    assert (parsed.readings, set(parsed.errors[0])) == ([], {"value"})
    parsed = parse_payload(message(), input=InputKind.MQTT, received_at=NOW)
    assert parsed.device_id == "BSM_G101" and parsed.total == 1 and not parsed.errors


def test_naive_received_at_is_still_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_payload(message(), input=InputKind.MQTT, received_at=NOW.replace(tzinfo=None))


def test_device_id_cache_is_bounded() -> None:
    payloads._VALID_DEVICE_IDS.clear()
    for n in range(payloads._VALID_DEVICE_IDS_MAX + 10):
        assert payloads._fast_device_id(f"DEV{n}") == f"DEV{n}"
    assert len(payloads._VALID_DEVICE_IDS) <= payloads._VALID_DEVICE_IDS_MAX
    assert payloads._fast_device_id("bad\x00id") is None
    assert "bad\x00id" not in payloads._VALID_DEVICE_IDS


_numbers = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 20, 46, 68, 114.8, 100, 100.0000001, 350, 650, 1433, 2000]),
)
# Device clocks are naive: hypothesis wants naive bounds for naive datetimes.
_EARLY, _LATE = datetime(1990, 1, 1), datetime(2030, 1, 1)  # noqa: DTZ001
_stamps = st.one_of(
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(
        lambda d: d.isoformat(sep=" ") if d.microsecond else d.strftime("%Y-%m-%d %H:%M:%S")
    ),
    st.datetimes(min_value=_EARLY, max_value=_LATE).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")
    ),
    st.text(max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(
    value=_numbers,
    stamp=_stamps,
    datatype=st.sampled_from([*BEDSIDE_DATATYPES, "hr", "Pulse", "bodyweight", "x"]),
    deviceid=st.one_of(st.text(max_size=70), st.integers()),
    zone=st.sampled_from([UTC, PARIS, ZoneInfo("America/New_York")]),
)
def test_fast_path_never_disagrees(
    value: object, stamp: str, datatype: str, deviceid: object, zone: tzinfo
) -> None:
    obj = message(value=value, timestamp=stamp, datatype=datatype, deviceid=deviceid)
    fast, general, _ = both(obj, zone=zone, now=NOW + timedelta(days=3650))
    if fast is not None:
        assert_same(fast, general)


@pytest.mark.parametrize(("text", "word"), [
    ('{"a": 1}}', "Extra data"),
    ('{"a": 1, "a": 2}', "duplicate key"),
    ('{"a": NaN}', "NaN"),
    ('{"a": 1e400}', "too large"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"a": }', "invalid JSON"),
])
def test_decode_json_shortcut_leaves_refusals_to_the_general_path(text: str, word: str) -> None:
    # An object without surrounding whitespace goes to the scanner directly; what it does not
    # take whole is decoded again the general way, with the same reasons as before.
    with pytest.raises(PayloadError) as info:
        payloads.decode_json(text)
    assert word in info.value.errors["body"]


def test_decode_json_shortcut_and_general_path_agree() -> None:
    for text in ('{}', '{"a": [1, 2.5, {"b": null}]}', ' {"a": 1} ', '{"a": "}"}'):
        assert payloads.decode_json(text) == payloads._STRICT_JSON.decode(text.strip())
