"""Payload parsing: the seed's formats accepted, every bad field named, nothing invented."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitalstation.domain.errors import PayloadError
from vitalstation.domain.payloads import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_FUTURE_SKEW,
    EARLIEST_PLAUSIBLE,
    MAX_DEVICE_ID_CHARS,
    MAX_NOTES_CHARS,
    VITAL_FIELDS,
    BatchParse,
    decode_json,
    parse_bedside_message,
    parse_inhealth_batch,
    parse_inhealth_reading,
    parse_payload,
    validate_reading,
)
from vitalstation.domain.readings import DataSource, InputKind, Measurement, Reading
from vitalstation.domain.vitals import Unit, VitalKind

NOW = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)
MEASURED = datetime(2025, 11, 17, 10, 30, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
_ABSENT = object()

# The seed's own sample bodies (spec/inhealth-iot-data-processing.md), verbatim.
SEED_SINGLE = """{
    "device_id": "DEV001",
    "timestamp": "2025-11-17T10:30:00Z",
    "heart_rate": 75,
    "blood_pressure_systolic": 120,
    "blood_pressure_diastolic": 80,
    "temperature": 98.6,
    "temperature_unit": "F",
    "respiratory_rate": 16,
    "oxygen_saturation": 98.0,
    "glucose": 95.0,
    "weight": 150.0,
    "weight_unit": "lbs",
    "notes": "Morning reading",
    "signal_quality": 95,
    "battery_level": 80
}"""
SEED_BATCH = """{
    "device_id": "DEV001",
    "readings": [
        {
            "timestamp": "2025-11-17T10:00:00Z",
            "heart_rate": 75,
            "blood_pressure_systolic": 120,
            "blood_pressure_diastolic": 80
        },
        {
            "timestamp": "2025-11-17T11:00:00Z",
            "heart_rate": 78,
            "blood_pressure_systolic": 122,
            "blood_pressure_diastolic": 81
        }
    ]
}"""
SEED_FILE = SEED_SINGLE.replace("Morning reading", "Automated reading from device")
SEED_CURL = """{
    "device_id": "DEV001",
    "timestamp": "2025-11-17T10:30:00Z",
    "heart_rate": 75,
    "blood_pressure_systolic": 120,
    "blood_pressure_diastolic": 80,
    "temperature": 98.6,
    "temperature_unit": "F"
  }"""
SEED_BEDSIDE = '{"deviceid": "BSM_G101", "timestamp": "2025-11-08 10:23:45.123456", ' \
    '"datatype": "HeartRate", "value": 85}'


def body(**fields: Any) -> dict[str, Any]:
    """A valid InHealth reading, with ``fields`` changed (``_ABSENT`` removes one)."""
    obj: dict[str, Any] = {
        "device_id": "DEV001", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75,
    }
    obj.update(fields)
    return {key: value for key, value in obj.items() if value is not _ABSENT}


def parse(obj: object, **kwargs: Any) -> Reading:
    kwargs.setdefault("received_at", NOW)
    return parse_inhealth_reading(obj, input=InputKind.REST, **kwargs)


def errors_of(obj: object, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(PayloadError) as info:
        parse(obj, **kwargs)
    return info.value.errors


def bedside(**fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "deviceid": "BSM_G101", "timestamp": "2025-11-08 10:23:45.123456",
        "datatype": "HeartRate", "value": 85,
    }
    obj.update(fields)
    return {key: value for key, value in obj.items() if value is not _ABSENT}


def parse_bedside(obj: object, **kwargs: Any) -> Reading:
    kwargs.setdefault("received_at", NOW)
    return parse_bedside_message(obj, input=InputKind.MQTT, **kwargs)


def bedside_errors(obj: object, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(PayloadError) as info:
        parse_bedside(obj, **kwargs)
    return info.value.errors


def batch(obj: object, **kwargs: Any) -> BatchParse:
    kwargs.setdefault("received_at", NOW)
    return parse_inhealth_batch(obj, input=InputKind.REST, **kwargs)


def batch_errors(obj: object, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(PayloadError) as info:
        batch(obj, **kwargs)
    return info.value.errors


def by_kind(reading: Reading) -> dict[VitalKind, Measurement]:
    return {m.kind: m for m in reading.measurements}


# --- PayloadError ---------------------------------------------------------------------------------


def test_payload_error_carries_the_field_map_and_a_one_line_message() -> None:
    exc = PayloadError({"heart_rate": "must be a number, not a string"})
    assert isinstance(exc, ValueError)
    assert exc.errors == {"heart_rate": "must be a number, not a string"}
    assert exc.message == "Invalid reading: heart_rate: must be a number, not a string"
    assert str(exc) == exc.message
    assert str(PayloadError({"body": "x"}, "custom")) == "custom"


def test_payload_error_survives_pickling() -> None:
    exc = pickle.loads(pickle.dumps(PayloadError({"a": "b", "c": "d"})))
    assert exc.errors == {"a": "b", "c": "d"}
    assert str(exc) == "Invalid reading: a: b; c: d"


# --- decode_json ----------------------------------------------------------------------------------


def test_decode_json_reads_bytes_and_text() -> None:
    assert decode_json(b'{"a": 1.5}') == {"a": 1.5}
    assert decode_json('{"a": [1, null]}') == {"a": [1, None]}


def test_decode_json_accepts_and_drops_a_bom() -> None:
    # The seed's file reader broke on a UTF-8 BOM (Notepad writes one).
    assert decode_json(b"\xef\xbb\xbf" + SEED_SINGLE.encode()) == json.loads(SEED_SINGLE)
    assert decode_json("\ufeff{}") == {}


@pytest.mark.parametrize(
    ("data", "word"),
    [
        (b'{"device_id": "D\xff"}', "UTF-8"),
        (b'{"heart_rate": 75,}', "line 1 column"),
        (b'{\n  "heart_rate": 75\n  "x": 1}', "line 3 column 3"),
        (b'{"heart_rate": NaN}', "NaN"),
        (b'{"heart_rate": Infinity}', "Infinity"),
        (b'{"heart_rate": -Infinity}', "Infinity"),
        (b'{"heart_rate": 1e400}', "too large"),
        (b'{"heart_rate": 80, "heart_rate": 180}', "duplicate"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"[" * 100_000, "nested"),
        (b'{"heart_rate": ' + b"9" * 5000 + b"}", "digits"),
    ],
)
def test_decode_json_refuses_with_a_reason(data: bytes, word: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_json(data)
    assert set(info.value.errors) == {"body"}
    assert word in info.value.errors["body"]
    assert "\n" not in str(info.value)


def test_decode_json_takes_only_bytes_or_text() -> None:
    with pytest.raises(TypeError):
        decode_json(123)  # type: ignore[arg-type]


# --- InHealth: the seed's samples -----------------------------------------------------------------


def test_seed_single_reading_parses_to_canonical_units_keeping_the_originals() -> None:
    reading = parse(decode_json(SEED_SINGLE), raw=SEED_SINGLE, source_ref="req-1")
    assert reading.device_id == "DEV001"
    assert reading.measured_at == MEASURED
    assert reading.measured_at.tzinfo is UTC
    assert reading.kinds() == tuple(VitalKind)  # declaration order
    m = by_kind(reading)
    assert (m[VitalKind.HEART_RATE].value, m[VitalKind.HEART_RATE].original_unit) == (
        75.0, Unit.PER_MINUTE,
    )
    assert m[VitalKind.SYSTOLIC_BP].value == 120.0
    assert m[VitalKind.DIASTOLIC_BP].value == 80.0
    assert m[VitalKind.TEMPERATURE].value == 37.0
    assert m[VitalKind.TEMPERATURE].original_value == 98.6
    assert m[VitalKind.TEMPERATURE].original_unit is Unit.FAHRENHEIT
    assert m[VitalKind.RESPIRATORY_RATE].value == 16.0
    assert m[VitalKind.SPO2].value == 98.0
    assert m[VitalKind.GLUCOSE].value == 95.0
    assert m[VitalKind.WEIGHT].value == pytest.approx(68.0388555, abs=1e-9)
    assert m[VitalKind.WEIGHT].original_value == 150.0
    assert m[VitalKind.WEIGHT].original_unit is Unit.POUND
    assert all(isinstance(x.original_value, float) for x in reading.measurements)
    assert reading.signal_quality == 95.0
    assert reading.battery_level == 80.0
    assert reading.notes == "Morning reading"
    assert reading.input is InputKind.REST
    assert reading.received_at == NOW
    assert reading.data_source is DataSource.DEVICE
    assert reading.raw == SEED_SINGLE
    assert reading.source_ref == "req-1"
    assert validate_reading(reading, now=NOW) == {}


def test_seed_file_example_parses() -> None:
    reading = parse_inhealth_reading(
        decode_json(SEED_FILE.encode()), input=InputKind.FILE, received_at=NOW
    )
    assert reading.notes == "Automated reading from device"
    assert len(reading.measurements) == 8
    assert reading.input is InputKind.FILE


def test_seed_curl_example_parses() -> None:
    reading = parse(decode_json(SEED_CURL))
    assert reading.kinds() == (
        VitalKind.HEART_RATE, VitalKind.SYSTOLIC_BP, VitalKind.DIASTOLIC_BP, VitalKind.TEMPERATURE,
    )
    assert reading.signal_quality is None
    assert reading.battery_level is None
    assert reading.notes is None


def test_seed_batch_parses_both_readings_with_the_top_level_device() -> None:
    result = batch(decode_json(SEED_BATCH))
    assert result.device_id == "DEV001"
    assert result.total == 2
    assert result.errors == {}
    assert [index for index, _ in result.readings] == [0, 1]
    first, second = (reading for _, reading in result.readings)
    assert first.device_id == second.device_id == "DEV001"
    assert first.measured_at == datetime(2025, 11, 17, 10, 0, tzinfo=UTC)
    assert second.measured_at == datetime(2025, 11, 17, 11, 0, tzinfo=UTC)
    assert [m.value for m in second.measurements] == [78.0, 122.0, 81.0]


# --- InHealth: shape and device_id ----------------------------------------------------------------


@pytest.mark.parametrize("obj", [[], "reading", 42, None, True])
def test_reading_that_is_not_an_object_is_refused(obj: object) -> None:
    errors = errors_of(obj)
    assert set(errors) == {"body"}
    assert "expected a JSON object" in errors["body"]


def test_unknown_fields_are_ignored() -> None:
    reading = parse(body(height=70, height_unit="in", firmware_version="1.2.3", extra={"a": 1}))
    assert reading.kinds() == (VitalKind.HEART_RATE,)


@pytest.mark.parametrize(
    ("device_id", "word"),
    [
        (_ABSENT, "required"),
        (None, "required"),
        (17, "string"),
        (True, "string"),
        ("", "empty"),
        ("D" * (MAX_DEVICE_ID_CHARS + 1), "at most 64"),
        ("DEV\n001", "control"),
        ("DEV\x00", "control"),
        (" DEV001", "whitespace"),
    ],
)
def test_bad_device_id_is_refused(device_id: object, word: str) -> None:
    errors = errors_of(body(device_id=device_id))
    assert word in errors["device_id"]


def test_integer_device_id_is_refused_with_the_reason() -> None:
    # The seed accepted its integer database id at the door and then failed on it.
    assert errors_of(body(device_id=1))["device_id"].startswith(
        "must be a string: the device's registered id"
    )


def test_device_id_of_64_characters_is_accepted() -> None:
    assert parse(body(device_id="D" * MAX_DEVICE_ID_CHARS)).device_id == "D" * 64


def test_device_id_from_context_fills_in_a_missing_one() -> None:
    assert parse(body(device_id=_ABSENT), device_id="DEV009").device_id == "DEV009"


def test_device_id_must_match_the_context() -> None:
    assert parse(body(device_id="DEV001"), device_id="DEV001").device_id == "DEV001"
    errors = errors_of(body(device_id="DEV002"), device_id="DEV001")
    assert "does not match" in errors["device_id"]
    assert "DEV001" in errors["device_id"]
    assert "DEV002" in errors["device_id"]


def test_manual_input_is_marked_manual() -> None:
    reading = parse_inhealth_reading(body(), input=InputKind.MANUAL, received_at=NOW)
    assert reading.data_source is DataSource.MANUAL


# --- InHealth: timestamp --------------------------------------------------------------------------


def test_missing_timestamp_is_refused_not_replaced_by_now() -> None:
    errors = errors_of(body(timestamp=_ABSENT))
    assert errors["timestamp"].startswith("required: the time the device measured")


@pytest.mark.parametrize(
    ("timestamp", "word"),
    [
        (None, "ISO-8601"),
        (1763375400, "epoch"),
        (1763375400000.0, "epoch"),
        ("yesterday", "ISO-8601"),
        ("2025-11-17", "ISO-8601"),  # a date has no time of measurement
        ("17/11/2025 10:30", "ISO-8601"),
        ("20251117T103000Z", "ISO-8601"),
        ("2025-W47-1T10:30:00", "ISO-8601"),
        ("2025-02-30T10:00:00Z", "valid"),
        ("2025-11-17T25:00:00Z", "valid"),
        ("２０２５-11-17T10:30:00Z", "ISO-8601"),
        ("2025-11-17T10:30:00." + "0" * 100 + "Z", "ISO-8601"),
        (["2025-11-17T10:30:00Z"], "ISO-8601"),
    ],
)
def test_unparsable_timestamp_names_the_expected_format(timestamp: object, word: str) -> None:
    assert word in errors_of(body(timestamp=timestamp))["timestamp"]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2025-11-17T10:30:00Z", MEASURED),
        ("2025-11-17T10:30:00z", MEASURED),
        ("2025-11-17T10:30:00+00:00", MEASURED),
        ("2025-11-17T11:30:00+01:00", MEASURED),
        ("2025-11-17T05:30:00-05:00", MEASURED),
        ("2025-11-17 10:30:00", MEASURED),
        ("2025-11-17T10:30", MEASURED),
        ("2025-11-17T10:30:00.250Z", MEASURED + timedelta(milliseconds=250)),
        ("2025-11-17T10:30:00.123456789Z", MEASURED + timedelta(microseconds=123456)),
    ],
)
def test_timestamp_is_converted_to_utc(timestamp: str, expected: datetime) -> None:
    measured_at = parse(body(timestamp=timestamp)).measured_at
    assert measured_at == expected
    assert measured_at.utcoffset() == timedelta(0)


def test_naive_timestamp_is_read_in_the_given_zone() -> None:
    # Paris is UTC+1 in November and UTC+2 in July.
    winter = parse(body(timestamp="2025-11-17 11:30:00"), naive_zone=PARIS).measured_at
    assert winter == MEASURED
    summer = parse(
        body(timestamp="2025-07-01T12:00:00"), naive_zone=PARIS
    ).measured_at
    assert summer == datetime(2025, 7, 1, 10, 0, tzinfo=UTC)
    # An explicit offset wins over the zone.
    assert parse(body(timestamp="2025-11-17T10:30:00Z"), naive_zone=PARIS).measured_at == MEASURED


def test_timestamp_in_the_future_is_refused() -> None:
    ahead = (NOW + DEFAULT_MAX_FUTURE_SKEW + timedelta(seconds=1)).isoformat()
    assert "in the future" in errors_of(body(timestamp=ahead))["timestamp"]


def test_timestamp_within_the_skew_is_accepted() -> None:
    ahead = NOW + DEFAULT_MAX_FUTURE_SKEW
    assert parse(body(timestamp=ahead.isoformat())).measured_at == ahead


def test_future_skew_is_configurable() -> None:
    ahead = (NOW + timedelta(minutes=1)).isoformat()
    errors = errors_of(body(timestamp=ahead), max_future_skew=timedelta(seconds=30))
    assert "future" in errors["timestamp"]


def test_now_defaults_to_received_at_and_can_be_given() -> None:
    later = NOW + timedelta(hours=1)
    assert parse(body(timestamp=later.isoformat()), received_at=later).measured_at == later
    errors = errors_of(body(timestamp=later.isoformat()), received_at=later, now=NOW)
    assert "future" in errors["timestamp"]


@pytest.mark.parametrize(
    "timestamp",
    ["1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"],
)
def test_timestamp_before_2000_is_a_clock_not_set(timestamp: str) -> None:
    reason = errors_of(body(timestamp=timestamp))["timestamp"]
    assert "2000" in reason or "plausible" in reason


def test_earliest_plausible_time_is_accepted() -> None:
    assert parse(body(timestamp="2000-01-01T00:00:00Z")).measured_at == EARLIEST_PLAUSIBLE


def test_year_9999_is_in_the_future_not_a_crash() -> None:
    assert "timestamp" in errors_of(body(timestamp="9999-12-31T23:59:59-01:00"))
    assert "future" in errors_of(body(timestamp="9999-12-31T23:00:00Z"))["timestamp"]


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware") as info:
        parse(body(), received_at=datetime(2025, 11, 17, 12, 0))  # noqa: DTZ001
    assert not isinstance(info.value, PayloadError)


# --- InHealth: numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("160", "not a string"),
        ("75.5", "not a string"),
        (True, "true/false"),
        (False, "true/false"),
        ([75], "not a list"),
        ({"value": 75}, "not an object"),
        (10**400, "too large"),
        (math.nan, "finite"),
        (math.inf, "finite"),
    ],
)
def test_vital_must_be_a_json_number(value: object, word: str) -> None:
    reason = errors_of(body(heart_rate=value))["heart_rate"]
    assert "number" in reason or "too large" in reason
    assert word in reason


def test_string_number_message_is_plain() -> None:
    with pytest.raises(PayloadError) as info:
        parse(body(heart_rate="160"))
    assert str(info.value) == "Invalid reading: heart_rate: must be a number, not a string"


def test_null_vital_means_not_measured() -> None:
    reading = parse(body(heart_rate=None, oxygen_saturation=97))
    assert reading.kinds() == (VitalKind.SPO2,)


def test_floats_are_kept_for_integer_vitals() -> None:
    assert by_kind(parse(body(heart_rate=75.5)))[VitalKind.HEART_RATE].value == 75.5


def test_measurements_follow_the_vital_order_not_the_payload_order() -> None:
    obj = {
        "weight": 70, "weight_unit": "kg", "oxygen_saturation": 97, "heart_rate": 60,
        "device_id": "D", "timestamp": "2025-11-17T10:30:00Z",
    }
    assert parse(obj).kinds() == (VitalKind.HEART_RATE, VitalKind.SPO2, VitalKind.WEIGHT)


# --- InHealth: vitals present ---------------------------------------------------------------------


def test_no_vital_is_refused() -> None:
    errors = errors_of(body(heart_rate=_ABSENT, notes="hi"))
    assert errors["vitals"].startswith("no vital sign in the reading")
    assert "oxygen_saturation" in errors["vitals"]


def test_all_vitals_null_is_no_vital() -> None:
    assert "vitals" in errors_of(body(heart_rate=None, temperature=None))


def test_unknown_fields_alone_are_no_vital() -> None:
    assert "vitals" in errors_of(body(heart_rate=_ABSENT, height=180, height_unit="cm"))


def test_weight_alone_is_a_reading() -> None:
    # The seed refused weight-only readings; a scale sends nothing else.
    reading = parse(body(heart_rate=_ABSENT, weight=70.0, weight_unit="kg"))
    assert reading.kinds() == (VitalKind.WEIGHT,)
    assert by_kind(reading)[VitalKind.WEIGHT].value == 70.0


# --- InHealth: plausibility -----------------------------------------------------------------------

_PAIRED = {"blood_pressure_systolic": 300, "blood_pressure_diastolic": 60}


@pytest.mark.parametrize(
    ("field", "value", "extra"),
    [
        ("heart_rate", -1, {}),
        ("heart_rate", 351, {}),
        ("blood_pressure_systolic", -1, {"blood_pressure_diastolic": 80}),
        ("blood_pressure_systolic", 351, {"blood_pressure_diastolic": 80}),
        ("blood_pressure_diastolic", -1, _PAIRED),
        ("blood_pressure_diastolic", 251, _PAIRED),
        ("temperature", 67.9, {}),
        ("temperature", 114.9, {}),
        ("temperature", 19.9, {"temperature_unit": "C"}),
        ("temperature", 46.1, {"temperature_unit": "C"}),
        ("respiratory_rate", -1, {}),
        ("respiratory_rate", 101, {}),
        ("oxygen_saturation", -0.5, {}),
        ("oxygen_saturation", 101, {}),
        ("glucose", 0.5, {}),
        ("glucose", 2001, {}),
        ("glucose", 0.05, {"glucose_unit": "mmol/L"}),
        ("glucose", 112, {"glucose_unit": "mmol/L"}),
        ("weight", 0.4, {}),
        ("weight", 1434, {}),
        ("weight", 0.1, {"weight_unit": "kg"}),
        ("weight", 651, {"weight_unit": "kg"}),
    ],
)
def test_implausible_value_is_refused_on_its_field(
    field: str, value: float, extra: dict[str, Any]
) -> None:
    obj = body(**{**extra, field: value})
    errors = errors_of(obj)
    assert "plausible range" in errors[field]
    assert errors[field].startswith(str(value))


@pytest.mark.parametrize(
    ("field", "value", "extra"),
    [
        ("heart_rate", 0, {}),  # asystole must reach the alarm engine
        ("heart_rate", 350, {}),
        ("respiratory_rate", 0, {}),  # apnoea
        ("oxygen_saturation", 0, {}),
        ("oxygen_saturation", 100, {}),
        ("temperature", 68.0, {}),
        ("temperature", 114.8, {}),
        ("temperature", 20, {"temperature_unit": "C"}),
        ("glucose", 1, {}),
        ("glucose", 2000, {}),
        ("weight", 650, {"weight_unit": "kg"}),
    ],
)
def test_extreme_but_real_values_are_accepted(
    field: str, value: float, extra: dict[str, Any]
) -> None:
    reading = parse(body(**{**extra, field: value}))
    assert by_kind(reading)[VitalKind(field)].original_value == value


def test_range_is_stated_in_the_unit_the_device_used() -> None:
    errors = errors_of(body(temperature=120.5, temperature_unit="F"))
    assert errors["temperature"] == "120.5 out of the plausible range 68.0–114.8 [degF]"
    errors = errors_of(body(temperature=50, temperature_unit="C"))
    assert errors["temperature"] == "50 out of the plausible range 20.0–46.0 Cel"
    errors = errors_of(body(heart_rate=400))
    assert errors["heart_rate"] == "400 out of the plausible range 0.0–350.0 /min"
    errors = errors_of(body(weight=2000, weight_unit="lbs"))
    assert "0.441–1433.005 [lb_av]" in errors["weight"]


def test_spo2_over_100_is_refused() -> None:
    assert "plausible range" in errors_of(body(oxygen_saturation=101))["oxygen_saturation"]


# --- InHealth: units ------------------------------------------------------------------------------


def test_celsius_temperature_without_unit_gets_a_hint() -> None:
    # The seed stored 37 "°F" (2.8 °C) and raised a hypothermia emergency.
    reason = errors_of(body(temperature=37))["temperature"]
    assert reason == '37 read as °F (no temperature_unit given) is implausible; ' \
        'send temperature_unit "C"'


def test_implausible_temperature_in_either_unit_gets_no_hint() -> None:
    reason = errors_of(body(temperature=200))["temperature"]
    assert "plausible range" in reason
    assert "temperature_unit" not in reason


def test_explicit_fahrenheit_gets_no_hint() -> None:
    reason = errors_of(body(temperature=37, temperature_unit="F"))["temperature"]
    assert "plausible range" in reason


@pytest.mark.parametrize(
    ("sent", "unit", "celsius"),
    [
        (37, "C", 37.0), (36.1, "C", 36.1), (36.1, "celsius", 36.1), (36.1, "°C", 36.1),
        (36.1, "Cel", 36.1), (98.6, "F", 37.0), (98.6, "°F", 37.0), (98.6, _ABSENT, 37.0),
        (98.6, None, 37.0),
    ],
)
def test_temperature_units(sent: float, unit: object, celsius: float) -> None:
    m = by_kind(parse(body(temperature=sent, temperature_unit=unit)))[VitalKind.TEMPERATURE]
    assert m.value == pytest.approx(celsius, abs=1e-12)
    assert m.original_value == sent
    assert m.original_unit is (Unit.CELSIUS if celsius == sent else Unit.FAHRENHEIT)


def test_weight_and_glucose_units() -> None:
    m = by_kind(parse(body(weight=70, weight_unit="kg", glucose=5.5, glucose_unit="mmol/L")))
    assert (m[VitalKind.WEIGHT].value, m[VitalKind.WEIGHT].original_unit) == (70.0, Unit.KILOGRAM)
    assert m[VitalKind.GLUCOSE].value == pytest.approx(99.0858, abs=1e-9)
    assert m[VitalKind.GLUCOSE].original_unit is Unit.MMOL_PER_L
    m = by_kind(parse(body(weight=150, glucose=95)))
    assert m[VitalKind.WEIGHT].original_unit is Unit.POUND
    assert m[VitalKind.GLUCOSE].original_unit is Unit.MG_PER_DL


@pytest.mark.parametrize(
    ("field", "unit", "vital", "word"),
    [
        ("temperature_unit", "K", "temperature", "unknown unit"),
        ("temperature_unit", "kg", "temperature", "not a unit of temperature"),
        ("temperature_unit", 1, "temperature", "must be a string"),
        ("weight_unit", "stone", "weight", "unknown unit"),
        ("weight_unit", "F", "weight", "not a unit of weight"),
        ("glucose_unit", "g/L", "glucose", "unknown unit"),
    ],
)
def test_bad_unit_is_refused_listing_accepted_spellings(
    field: str, unit: object, vital: str, word: str
) -> None:
    errors = errors_of(body(**{field: unit, vital: 50}))
    assert word in errors[field]
    assert "accepted:" in errors[field]
    assert vital not in errors  # the value is not judged in a unit we do not know


def test_accepted_spellings_are_listed() -> None:
    reason = errors_of(body(temperature=37, temperature_unit="K"))["temperature_unit"]
    assert reason.startswith("unknown unit 'K'; accepted: F, C")
    reason = errors_of(body(weight=70, weight_unit="st"))["weight_unit"]
    assert "lbs, kg" in reason


def test_bad_unit_is_refused_even_without_its_vital() -> None:
    assert "temperature_unit" in errors_of(body(temperature_unit="K"))


# --- InHealth: blood pressure ---------------------------------------------------------------------


def test_systolic_without_diastolic_is_refused() -> None:
    errors = errors_of(body(blood_pressure_systolic=120))
    assert errors == {"blood_pressure_diastolic": "required with blood_pressure_systolic"}


def test_diastolic_without_systolic_is_refused() -> None:
    errors = errors_of(body(blood_pressure_diastolic=80, blood_pressure_systolic=None))
    assert errors == {"blood_pressure_systolic": "required with blood_pressure_diastolic"}


@pytest.mark.parametrize(("systolic", "diastolic"), [(80, 120), (90, 91)])
def test_diastolic_must_not_be_above_systolic(systolic: int, diastolic: int) -> None:
    errors = errors_of(
        body(blood_pressure_systolic=systolic, blood_pressure_diastolic=diastolic)
    )
    assert set(errors) == {"blood_pressure_diastolic"}
    assert "not be above blood_pressure_systolic" in errors["blood_pressure_diastolic"]
    assert errors["blood_pressure_diastolic"].startswith(f"{diastolic} ")


def test_equal_pressures_pass_so_that_a_flat_arterial_line_reaches_the_alarms() -> None:
    # 0/0 from an arterial line in cardiac arrest is the most urgent reading there is.
    reading = parse(body(blood_pressure_systolic=0, blood_pressure_diastolic=0))
    assert {m.kind: m.value for m in reading.measurements}[VitalKind.DIASTOLIC_BP] == 0


def test_bad_systolic_and_missing_diastolic_are_both_reported() -> None:
    errors = errors_of(body(blood_pressure_systolic="120"))
    assert set(errors) == {"blood_pressure_systolic", "blood_pressure_diastolic"}


# --- InHealth: device figures and notes -----------------------------------------------------------


@pytest.mark.parametrize("field", ["signal_quality", "battery_level"])
@pytest.mark.parametrize(("value", "word"), [(101, "range"), (-1, "range"), ("95", "string"),
                                             (True, "true/false")])
def test_bad_device_figure_is_refused(field: str, value: object, word: str) -> None:
    assert word in errors_of(body(**{field: value}))[field]


@pytest.mark.parametrize("value", [0, 100, 55.5])
def test_device_figures_from_0_to_100_are_kept(value: float) -> None:
    reading = parse(body(signal_quality=value, battery_level=value))
    assert reading.signal_quality == reading.battery_level == value


def test_notes_are_bounded() -> None:
    assert parse(body(notes="n" * MAX_NOTES_CHARS)).notes == "n" * 1000
    assert "at most 1000" in errors_of(body(notes="n" * (MAX_NOTES_CHARS + 1)))["notes"]
    assert "string" in errors_of(body(notes=12))["notes"]
    assert parse(body(notes="Fièvre, 2nd line\nok")).notes == "Fièvre, 2nd line\nok"


def test_notes_with_a_lone_surrogate_are_refused() -> None:
    obj = decode_json('{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", '
                      '"heart_rate": 70, "notes": "bad \\ud800"}')
    assert "Unicode" in errors_of(obj)["notes"]


def test_every_error_is_reported_at_once() -> None:
    obj = body(device_id=7, timestamp=_ABSENT, heart_rate="160", temperature=37,
               battery_level=101, weight_unit="stone", notes=[])
    with pytest.raises(PayloadError) as info:
        parse(obj)
    errors = info.value.errors
    assert set(errors) == {
        "device_id", "timestamp", "heart_rate", "temperature", "battery_level", "weight_unit",
        "notes",
    }
    for field in errors:
        assert f"{field}: " in str(info.value)
    assert str(info.value).startswith("Invalid reading: ")


# --- batch ----------------------------------------------------------------------------------------


def test_batch_partial_success_reports_bad_readings_by_index() -> None:
    readings = [
        {"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 70},
        {"timestamp": "2025-11-17T10:01:00Z", "heart_rate": "71"},
        "not a reading",
        {"heart_rate": 73},
        {"timestamp": "2025-11-17T10:04:00Z", "oxygen_saturation": 96},
    ]
    result = batch({"device_id": "DEV001", "readings": readings})
    assert result.total == 5
    assert [index for index, _ in result.readings] == [0, 4]
    assert set(result.errors) == {1, 2, 3}
    assert "heart_rate" in result.errors[1]
    assert "expected a JSON object" in result.errors[2]["body"]
    assert "required" in result.errors[3]["timestamp"]


@pytest.mark.parametrize(
    ("readings", "word"),
    [
        (_ABSENT, "required"),
        (None, "required"),
        ({"heart_rate": 1}, "must be a list"),
        ("[]", "must be a list"),
        ([], "empty"),
    ],
)
def test_batch_without_a_list_of_readings_is_refused(readings: object, word: str) -> None:
    obj = {"device_id": "DEV001", "readings": readings}
    if readings is _ABSENT:
        del obj["readings"]
    with pytest.raises(PayloadError) as info:
        batch(obj)
    assert word in info.value.errors["readings"]
    assert str(info.value).startswith("Invalid batch: ")


def test_batch_over_the_limit_is_refused_saying_the_limit() -> None:
    reading = {"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 70}
    errors = batch_errors({"device_id": "D", "readings": [reading] * 3}, max_readings=2)
    assert "at most 2" in errors["readings"]
    assert batch({"device_id": "D", "readings": [reading] * 2}, max_readings=2).total == 2
    assert DEFAULT_MAX_BATCH == 1000
    errors = batch_errors({"device_id": "D", "readings": [reading] * 1001})
    assert "1001" in errors["readings"]
    assert "1000" in errors["readings"]


@pytest.mark.parametrize("obj", [[], "x", None, 3])
def test_batch_that_is_not_an_object_is_refused(obj: object) -> None:
    assert "body" in batch_errors(obj)


def test_batch_readings_inherit_the_top_level_device() -> None:
    obj = {"device_id": "BED-3", "readings": [
        {"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 70},
        {"device_id": "BED-3", "timestamp": "2025-11-17T10:01:00Z", "heart_rate": 71},
        {"device_id": "BED-4", "timestamp": "2025-11-17T10:02:00Z", "heart_rate": 72},
    ]}
    result = batch(obj)
    assert [r.device_id for _, r in result.readings] == ["BED-3", "BED-3"]
    assert "does not match" in result.errors[2]["device_id"]


def test_batch_without_top_level_id_uses_each_readings_own() -> None:
    obj = {"readings": [
        {"device_id": "A", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 70},
        {"device_id": "A", "timestamp": "2025-11-17T10:01:00Z", "heart_rate": 71},
    ]}
    result = batch(obj)
    assert result.device_id == "A"
    assert len(result.readings) == 2
    obj["readings"][1]["device_id"] = "B"
    result = batch(obj)
    assert result.device_id is None
    assert [r.device_id for _, r in result.readings] == ["A", "B"]


def test_batch_without_any_device_id_is_refused_naming_the_readings() -> None:
    obj = {"readings": [
        {"device_id": "A", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 70},
        {"timestamp": "2025-11-17T10:01:00Z", "heart_rate": 71},
    ]}
    errors = batch_errors(obj)
    assert "required" in errors["device_id"]
    assert "1" in errors["device_id"]


def test_batch_with_a_bad_top_level_id_is_refused_with_other_whole_request_errors() -> None:
    errors = batch_errors({"device_id": 5, "readings": []})
    assert set(errors) == {"device_id", "readings"}


def test_batch_top_level_id_must_match_the_context() -> None:
    obj = {"device_id": "A", "readings": [{"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 1}]}
    assert "does not match" in batch_errors(obj, device_id="B")["device_id"]
    del obj["device_id"]
    result = batch(obj, device_id="B")
    assert result.device_id == "B"
    assert result.readings[0][1].device_id == "B"


# --- bedside monitor ------------------------------------------------------------------------------


def test_seed_bedside_message_parses() -> None:
    reading = parse_bedside(decode_json(SEED_BEDSIDE), raw=SEED_BEDSIDE, source_ref="topic")
    assert reading.device_id == "BSM_G101"
    assert reading.measured_at == datetime(2025, 11, 8, 10, 23, 45, 123456, tzinfo=UTC)
    assert reading.measurements == (
        Measurement(VitalKind.HEART_RATE, 85.0, 85.0, Unit.PER_MINUTE),
    )
    assert reading.input is InputKind.MQTT
    assert reading.raw == SEED_BEDSIDE
    assert reading.source_ref == "topic"
    assert validate_reading(reading, now=NOW) == {}


def test_bedside_fever_is_not_truncated() -> None:
    # The seed consumer did int(101.5) == 101.
    m = parse_bedside(bedside(datatype="Temperature", value=101.5)).measurements[0]
    assert m.original_value == 101.5
    assert m.original_unit is Unit.FAHRENHEIT
    assert m.value == (101.5 - 32.0) * 5.0 / 9.0
    assert m.value == pytest.approx(38.6111111, abs=1e-6)


@pytest.mark.parametrize(
    ("datatype", "kind", "value"),
    [
        ("HeartRate", VitalKind.HEART_RATE, 85), ("heart_rate", VitalKind.HEART_RATE, 85),
        ("HR", VitalKind.HEART_RATE, 85), ("heartrate", VitalKind.HEART_RATE, 85),
        ("SPO2", VitalKind.SPO2, 90), ("SpO2", VitalKind.SPO2, 90),
        ("oxygen_saturation", VitalKind.SPO2, 90),
        ("Temperature", VitalKind.TEMPERATURE, 99.0), ("temperature", VitalKind.TEMPERATURE, 99),
        ("RespiratoryRate", VitalKind.RESPIRATORY_RATE, 16),
        ("respiratory_rate", VitalKind.RESPIRATORY_RATE, 16),
        ("SystolicBP", VitalKind.SYSTOLIC_BP, 120),
        ("BloodPressureSystolic", VitalKind.SYSTOLIC_BP, 120),
        ("blood_pressure_systolic", VitalKind.SYSTOLIC_BP, 120),
        ("DiastolicBP", VitalKind.DIASTOLIC_BP, 80),
        ("BloodPressureDiastolic", VitalKind.DIASTOLIC_BP, 80),
        ("blood_pressure_diastolic", VitalKind.DIASTOLIC_BP, 80),
        ("Glucose", VitalKind.GLUCOSE, 95), ("Weight", VitalKind.WEIGHT, 150),
        (" heartRate ", VitalKind.HEART_RATE, 85),
    ],
)
def test_bedside_datatype_spellings(datatype: str, kind: VitalKind, value: float) -> None:
    reading = parse_bedside(bedside(datatype=datatype, value=value))
    assert reading.kinds() == (kind,)
    assert reading.measurements[0].original_value == value


@pytest.mark.parametrize(("datatype", "word"), [
    ("BloodPressure", "unknown datatype"), ("", "unknown datatype"), (5, "string"),
    (None, "required"), (_ABSENT, "required"),
])
def test_bedside_unknown_datatype_lists_the_accepted_names(datatype: object, word: str) -> None:
    reason = bedside_errors(bedside(datatype=datatype))["datatype"]
    assert word in reason
    assert "HeartRate" in reason
    assert "SPO2" in reason
    assert "heart_rate" in reason


def test_bedside_device_id_override_wins() -> None:
    assert parse_bedside(bedside(), device_id="BED-07").device_id == "BED-07"
    assert parse_bedside(bedside(deviceid=_ABSENT), device_id="BED-07").device_id == "BED-07"
    assert parse_bedside(bedside(deviceid=12), device_id="BED-07").device_id == "BED-07"
    assert "deviceid" in bedside_errors(bedside(), device_id="x" * 65)


@pytest.mark.parametrize(("deviceid", "word"), [(_ABSENT, "required"), (12, "string"),
                                                ("", "empty")])
def test_bedside_needs_a_device_id(deviceid: object, word: str) -> None:
    assert word in bedside_errors(bedside(deviceid=deviceid))["deviceid"]


def test_bedside_naive_timestamp_in_utc_and_in_a_zone() -> None:
    assert parse_bedside(bedside()).measured_at == datetime(
        2025, 11, 8, 10, 23, 45, 123456, tzinfo=UTC
    )
    assert parse_bedside(bedside(), naive_zone=PARIS).measured_at == datetime(
        2025, 11, 8, 9, 23, 45, 123456, tzinfo=UTC
    )


@pytest.mark.parametrize(("timestamp", "word"), [
    (_ABSENT, "required"), (1762597425, "epoch"), ("2025-11-08", "ISO-8601"),
    ("2030-01-01 00:00:00", "future"), ("1970-01-01 00:00:00", "2000"),
])
def test_bedside_bad_timestamp(timestamp: object, word: str) -> None:
    assert word in bedside_errors(bedside(timestamp=timestamp))["timestamp"]


@pytest.mark.parametrize(("value", "word"), [
    ("85", "not a string"), (True, "true/false"), (None, "required"), (_ABSENT, "required"),
    (400, "plausible range"), ([85], "number"),
])
def test_bedside_value_must_be_a_plausible_number(value: object, word: str) -> None:
    assert word in bedside_errors(bedside(value=value))["value"]


def test_bedside_spo2_over_100_is_refused() -> None:
    assert "plausible" in bedside_errors(bedside(datatype="SPO2", value=101))["value"]


def test_bedside_units() -> None:
    m = parse_bedside(bedside(datatype="Temperature", value=37, unit="C")).measurements[0]
    assert (m.value, m.original_unit) == (37.0, Unit.CELSIUS)
    m = parse_bedside(bedside(datatype="Weight", value=150)).measurements[0]
    assert (m.value, m.original_unit) == (pytest.approx(68.0388555), Unit.POUND)
    m = parse_bedside(bedside(datatype="Weight", value=70, unit="kg")).measurements[0]
    assert (m.value, m.original_unit) == (70.0, Unit.KILOGRAM)
    m = parse_bedside(bedside(datatype="Glucose", value=5.5, unit="mmol/L")).measurements[0]
    assert m.value == pytest.approx(99.0858)
    m = parse_bedside(bedside(value=85, unit="bpm")).measurements[0]
    assert m.original_unit is Unit.PER_MINUTE


def test_bedside_celsius_without_unit_gets_a_hint() -> None:
    reason = bedside_errors(bedside(datatype="Temperature", value=37))["value"]
    assert reason == '37 read as °F (no unit given) is implausible; send unit "C"'


@pytest.mark.parametrize(("datatype", "unit", "word"), [
    ("HeartRate", "kg", "not a unit of heart_rate"), ("Temperature", "K", "unknown unit"),
    ("Temperature", 5, "string"), ("Nope", "zz", "unit"),
])
def test_bedside_bad_unit(datatype: str, unit: object, word: str) -> None:
    assert word in bedside_errors(bedside(datatype=datatype, unit=unit))["unit"]


def test_bedside_device_figures() -> None:
    reading = parse_bedside(bedside(signal_quality=88, battery_level=12.5))
    assert (reading.signal_quality, reading.battery_level) == (88.0, 12.5)
    errors = bedside_errors(bedside(signal_quality="high", battery_level=-3))
    assert set(errors) == {"signal_quality", "battery_level"}


@pytest.mark.parametrize("obj", [[], "m", None])
def test_bedside_not_an_object(obj: object) -> None:
    assert "body" in bedside_errors(obj)


def test_bedside_errors_are_reported_together() -> None:
    with pytest.raises(PayloadError) as info:
        parse_bedside({"datatype": "Pulse?", "value": "x"})
    assert set(info.value.errors) == {"deviceid", "timestamp", "datatype", "value"}
    assert str(info.value).startswith("Invalid message: ")


# --- parse_payload --------------------------------------------------------------------------------


def _payload(obj: object, **kwargs: Any) -> BatchParse:
    kwargs.setdefault("received_at", NOW)
    return parse_payload(obj, input=InputKind.MQTT, **kwargs)


def test_parse_payload_detects_a_batch() -> None:
    result = _payload(decode_json(SEED_BATCH))
    assert result.total == 2
    assert len(result.readings) == 2
    assert result.device_id == "DEV001"


def test_parse_payload_detects_a_bedside_message() -> None:
    result = _payload(decode_json(SEED_BEDSIDE), device_id="BED-1")
    assert result.total == 1
    assert result.errors == {}
    index, reading = result.readings[0]
    assert index == 0
    assert reading.device_id == "BED-1" == result.device_id
    assert reading.kinds() == (VitalKind.HEART_RATE,)


def test_parse_payload_detects_an_inhealth_reading() -> None:
    result = _payload(decode_json(SEED_SINGLE))
    assert result.total == 1
    assert result.device_id == "DEV001"
    assert len(result.readings[0][1].measurements) == 8


def test_parse_payload_device_id_must_match_an_inhealth_reading() -> None:
    result = _payload(decode_json(SEED_SINGLE), device_id="OTHER")
    assert result.readings == []
    assert "does not match" in result.errors[0]["device_id"]


def test_parse_payload_reports_an_invalid_single_reading_at_index_0() -> None:
    result = _payload(body(heart_rate="75"))
    assert result == BatchParse(
        device_id="DEV001", readings=[],
        errors={0: {"heart_rate": "must be a number, not a string"}}, total=1,
    )
    result = _payload(bedside(value="85"))
    assert result.device_id == "BSM_G101"
    assert set(result.errors[0]) == {"value"}


@pytest.mark.parametrize("obj", [[SEED_SINGLE], "text", 1.5, None])
def test_parse_payload_refuses_a_non_object(obj: object) -> None:
    with pytest.raises(PayloadError) as info:
        _payload(obj)
    assert "expected a JSON object" in info.value.errors["body"]


def test_parse_payload_raises_whole_batch_problems() -> None:
    with pytest.raises(PayloadError):
        _payload({"device_id": "D", "readings": []})


# --- validate_reading -----------------------------------------------------------------------------

GOOD = Reading(
    device_id="DEV001",
    measured_at=MEASURED,
    measurements=(
        Measurement(VitalKind.HEART_RATE, 75.0, 75.0, Unit.PER_MINUTE),
        Measurement(VitalKind.SYSTOLIC_BP, 120.0, 120.0, Unit.MMHG),
        Measurement(VitalKind.DIASTOLIC_BP, 80.0, 80.0, Unit.MMHG),
        Measurement(VitalKind.TEMPERATURE, 37.0, 98.6, Unit.FAHRENHEIT),
    ),
    input=InputKind.KINESIS,
    received_at=NOW,
    signal_quality=90.0,
    battery_level=50.0,
    notes="ok",
)


def _with_measurement(m: Measurement) -> Reading:
    return replace(GOOD, measurements=(*GOOD.measurements, m))


def test_validate_reading_accepts_a_good_reading() -> None:
    assert validate_reading(GOOD, now=NOW) == {}
    assert validate_reading(replace(GOOD, signal_quality=None, battery_level=None,
                                    notes=None), now=NOW) == {}


@pytest.mark.parametrize(
    ("reading", "field", "word"),
    [
        (replace(GOOD, device_id=""), "device_id", "empty"),
        (replace(GOOD, device_id="x" * 65), "device_id", "64"),
        (replace(GOOD, device_id=5), "device_id", "string"),
        (replace(GOOD, device_id="a\tb"), "device_id", "control"),
        (replace(GOOD, measured_at=MEASURED.replace(tzinfo=None)), "timestamp", "UTC"),
        (replace(GOOD, measured_at=MEASURED.astimezone(PARIS)), "timestamp", "UTC"),
        (replace(GOOD, measured_at=NOW + timedelta(minutes=6)), "timestamp", "future"),
        (replace(GOOD, measured_at=datetime(1970, 1, 1, tzinfo=UTC)), "timestamp", "2000"),
        (replace(GOOD, measurements=()), "vitals", "no vital"),
        (_with_measurement(Measurement(VitalKind.SPO2, 101.0, 101.0, Unit.PERCENT)),
         "oxygen_saturation", "plausible range"),
        (_with_measurement(Measurement(VitalKind.SPO2, math.nan, math.nan, Unit.PERCENT)),
         "oxygen_saturation", "plausible range"),
        (_with_measurement(Measurement(VitalKind.GLUCOSE, math.inf, math.inf, Unit.MG_PER_DL)),
         "glucose", "plausible range"),
        (_with_measurement(Measurement(VitalKind.RESPIRATORY_RATE, -1.0, -1.0, Unit.PER_MINUTE)),
         "respiratory_rate", "plausible range"),
        (_with_measurement(Measurement(VitalKind.HEART_RATE, 80.0, 80.0, Unit.PER_MINUTE)),
         "heart_rate", "more than once"),
        (_with_measurement(Measurement(VitalKind.WEIGHT, 70.0, 70.0, Unit.CELSIUS)),
         "weight", "not a unit"),
        (_with_measurement(Measurement(VitalKind.WEIGHT, "70", 70.0, Unit.KILOGRAM)),  # type: ignore[arg-type]
         "weight", "number"),
        (replace(GOOD, measurements=(
            Measurement(VitalKind.SYSTOLIC_BP, 80.0, 80.0, Unit.MMHG),
            Measurement(VitalKind.DIASTOLIC_BP, 90.0, 90.0, Unit.MMHG),
        )), "blood_pressure_diastolic", "above"),
        (replace(GOOD, signal_quality=101.0), "signal_quality", "range"),
        (replace(GOOD, battery_level=-1.0), "battery_level", "range"),
        (replace(GOOD, battery_level=math.nan), "battery_level", "range"),
        (replace(GOOD, notes="n" * 1001), "notes", "1000"),
    ],
)
def test_validate_reading_names_each_failure(reading: Reading, field: str, word: str) -> None:
    errors = validate_reading(reading, now=NOW)
    assert word in errors[field]


def test_validate_reading_accepts_asystole_and_honours_the_skew() -> None:
    asystole = replace(GOOD, measurements=(
        Measurement(VitalKind.HEART_RATE, 0.0, 0.0, Unit.PER_MINUTE),
    ))
    assert validate_reading(asystole, now=NOW) == {}
    ahead = replace(GOOD, measured_at=NOW + timedelta(minutes=2))
    assert validate_reading(ahead, now=NOW) == {}
    assert "timestamp" in validate_reading(ahead, now=NOW, max_future_skew=timedelta(0))


def test_validate_reading_reports_several_failures() -> None:
    bad = replace(GOOD, device_id="", measurements=(), battery_level=200.0)
    assert set(validate_reading(bad, now=NOW)) == {"device_id", "vitals", "battery_level"}


# --- properties -----------------------------------------------------------------------------------

_FIELDS = [
    "device_id", "deviceid", "timestamp", "datatype", "value", "unit", "readings", "notes",
    "temperature_unit", "weight_unit", "glucose_unit", "signal_quality", "battery_level",
    *(kind.value for kind in VitalKind),
]
_TIMESTAMPS = [
    "2025-11-17T10:30:00Z", "2025-11-17 10:30:00", "2025-11-17T10:30:00.5+05:30",
    "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2025-03-30 02:30:00",
    "2025-10-26 02:30:00", "1970-01-01T00:00:00Z", "2025-11-17",
]
_values = (
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats()
    | st.floats(min_value=0, max_value=200) | st.text(max_size=12)
    | st.sampled_from([
        10**400, -(10**400), *_TIMESTAMPS, "HeartRate", "SPO2", "Temperature", "F", "C", "kg",
        "lbs", "mmol/L", "DEV001",
    ])
    | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.none())
)
_reading_like = st.fixed_dictionaries(
    {}, optional={field: _values for field in _FIELDS if field != "readings"}
)
_payloads = _reading_like | st.fixed_dictionaries(
    {"readings": st.lists(_reading_like | _values, max_size=3) | _values},
    optional={"device_id": _values},
)
_ZONES = st.sampled_from([UTC, PARIS, ZoneInfo("Pacific/Kiritimati")])


def _outcome(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, PayloadError | None]:
    """Call ``function``; its result, or the PayloadError it raised (anything else propagates)."""
    try:
        return function(*args, **kwargs), None
    except PayloadError as exc:
        return None, exc


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(obj=_payloads, device_id=st.none() | st.sampled_from(["DEV001", "", "x" * 70]),
       zone=_ZONES)
def test_parse_payload_raises_nothing_but_payload_error(
    obj: object, device_id: str | None, zone: Any
) -> None:
    result, error = _outcome(
        parse_payload, obj, input=InputKind.FILE, received_at=NOW, device_id=device_id,
        naive_zone=zone,
    )
    if error is not None:
        assert error.errors
        return
    assert result.total == len(result.readings) + len(result.errors)
    for _, reading in result.readings:
        assert validate_reading(reading, now=NOW) == {}


_vital_values = st.none() | st.integers(-5, 400) | st.floats(-5, 400, allow_nan=False)


@settings(max_examples=40, deadline=None, database=None)
@given(
    vitals=st.fixed_dictionaries({}, optional={field: _vital_values for field in VITAL_FIELDS}),
    units=st.fixed_dictionaries({}, optional={
        "temperature_unit": st.sampled_from(["F", "C"]),
        "weight_unit": st.sampled_from(["lbs", "kg"]),
        "glucose_unit": st.sampled_from(["mg/dL", "mmol/L"]),
    }),
    timestamp=st.sampled_from(_TIMESTAMPS[:3]),
    zone=_ZONES,
)
def test_every_reading_a_parser_accepts_passes_validate_reading(
    vitals: dict[str, Any], units: dict[str, str], timestamp: str, zone: Any
) -> None:
    obj = {"device_id": "DEV001", "timestamp": timestamp, **vitals, **units}
    reading, error = _outcome(parse, obj, naive_zone=zone)
    if error is not None:
        assert set(error.errors) <= {*VITAL_FIELDS, "vitals"}
        return
    assert validate_reading(reading, now=NOW) == {}
    assert [m.kind.value for m in reading.measurements] == [
        field for field in VITAL_FIELDS if vitals.get(field) is not None
    ]


@settings(max_examples=60, deadline=None, database=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_decode_json_raises_nothing_but_payload_error(data: bytes | str) -> None:
    _, error = _outcome(decode_json, data)
    if error is not None:
        assert set(error.errors) == {"body"}


@settings(max_examples=30, deadline=None, database=None)
@given(st.floats(min_value=68.0, max_value=114.8))
def test_any_plausible_fahrenheit_round_trips_through_a_reading(fahrenheit: float) -> None:
    m = parse(body(temperature=fahrenheit)).measurements[-1]
    assert m.original_value == fahrenheit
    assert m.value * 9.0 / 5.0 + 32.0 == pytest.approx(fahrenheit, abs=1e-9)
