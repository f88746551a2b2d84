"""Device payload formats → readings, with every bad field named.

Two wire formats reach the station:

* the InHealth reading object (REST, file drop, MQTT, Kinesis), alone or as a batch
  ``{"device_id": ..., "readings": [...]}``;
* the bedside monitor's one-vital message ``{"deviceid", "timestamp", "datatype", "value"}``.

The seed trusted both: strings like ``"160"`` were stored, a Celsius 37 without a unit was read
as °F, a missing timestamp became server "now", the bedside consumer ``int()``-truncated 101.5 °F.
Here a payload is parsed strictly, converted to canonical units with the device's figures kept,
and refused with a field → reason map (``PayloadError``) that the inputs can send back or file
beside a quarantined payload.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta, tzinfo

from vitalstation.domain.errors import PayloadError, describe_json_type, quote, summarize
from vitalstation.domain.readings import DataSource, InputKind, Measurement, Reading
from vitalstation.domain.timestamps import (
    DEFAULT_MAX_FUTURE_SKEW,
    EARLIEST_PLAUSIBLE,
    check_measured_at,
    parse_device_timestamp,
    require_aware,
)
from vitalstation.domain.vitals import (
    ACCEPTED_UNITS,
    CANONICAL_UNIT,
    PERCENT_RANGE,
    PLAUSIBLE_RANGES,
    UNIT_ALIASES,
    Unit,
    VitalKind,
    fahrenheit_to_celsius,
    from_canonical,
    parse_unit,
    pounds_to_kilograms,
    to_canonical,
)

__all__ = [
    "BEDSIDE_DATATYPES",
    "DEFAULT_DEVICE_UNITS",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_FUTURE_SKEW",
    "EARLIEST_PLAUSIBLE",
    "INHEALTH_UNIT_FIELDS",
    "MAX_DEVICE_ID_CHARS",
    "MAX_NOTES_CHARS",
    "VITAL_FIELDS",
    "BatchParse",
    "BatchReadings",
    "PayloadError",
    "decode_json",
    "parse_bedside_message",
    "parse_inhealth_batch",
    "parse_inhealth_reading",
    "parse_inhealth_readings",
    "parse_payload",
    "parse_plain_bedside",
    "validate_reading",
    "validate_readings",
]

# Readings in one batch; the seed had no cap, so one request could hold the pipeline for minutes.
DEFAULT_MAX_BATCH = 1000
MAX_NOTES_CHARS = 1000
MAX_DEVICE_ID_CHARS = 64

# The InHealth field names are the VitalKind values.
VITAL_FIELDS: tuple[str, ...] = tuple(kind.value for kind in VitalKind)

# Unit a device is assumed to use when it names none: the seed's contract (temperature °F, weight
# lbs, glucose mg/dL; the bedside publisher sends °F too).
DEFAULT_DEVICE_UNITS: dict[VitalKind, Unit] = {
    **CANONICAL_UNIT,
    VitalKind.TEMPERATURE: Unit.FAHRENHEIT,
    VitalKind.WEIGHT: Unit.POUND,
    VitalKind.GLUCOSE: Unit.MG_PER_DL,
}

# InHealth unit fields, one per vital that can come in more than one unit.
INHEALTH_UNIT_FIELDS: dict[VitalKind, str] = {
    VitalKind.TEMPERATURE: "temperature_unit",
    VitalKind.GLUCOSE: "glucose_unit",
    VitalKind.WEIGHT: "weight_unit",
}

# Bedside "datatype" spellings, compared after lower-casing and dropping "_", "-" and spaces, so
# HeartRate, heart_rate and HEART-RATE are one name.
_DATATYPE_NAMES: dict[str, VitalKind] = {
    "heartrate": VitalKind.HEART_RATE,
    "hr": VitalKind.HEART_RATE,
    "pulse": VitalKind.HEART_RATE,
    "pulserate": VitalKind.HEART_RATE,
    "spo2": VitalKind.SPO2,
    "oxygensaturation": VitalKind.SPO2,
    "temperature": VitalKind.TEMPERATURE,
    "temp": VitalKind.TEMPERATURE,
    "bodytemperature": VitalKind.TEMPERATURE,
    "respiratoryrate": VitalKind.RESPIRATORY_RATE,
    "rr": VitalKind.RESPIRATORY_RATE,
    "resprate": VitalKind.RESPIRATORY_RATE,
    "respirationrate": VitalKind.RESPIRATORY_RATE,
    "systolicbp": VitalKind.SYSTOLIC_BP,
    "bloodpressuresystolic": VitalKind.SYSTOLIC_BP,
    "bpsystolic": VitalKind.SYSTOLIC_BP,
    "sbp": VitalKind.SYSTOLIC_BP,
    "diastolicbp": VitalKind.DIASTOLIC_BP,
    "bloodpressurediastolic": VitalKind.DIASTOLIC_BP,
    "bpdiastolic": VitalKind.DIASTOLIC_BP,
    "dbp": VitalKind.DIASTOLIC_BP,
    "glucose": VitalKind.GLUCOSE,
    "bloodglucose": VitalKind.GLUCOSE,
    "weight": VitalKind.WEIGHT,
    "bodyweight": VitalKind.WEIGHT,
}
BEDSIDE_DATATYPES: tuple[str, ...] = (
    "HeartRate", "SPO2", "Temperature", "RespiratoryRate", "SystolicBP", "DiastolicBP", "Glucose",
    "Weight",
)
_DATATYPE_HINT = (
    ", ".join(BEDSIDE_DATATYPES)
    + " (any case; the snake_case names heart_rate, oxygen_saturation, blood_pressure_systolic, "
    "... and HR, RR too)"
)

# How a unit is shown first in "accepted:" lists; the other alias spellings follow it.
_PREFERRED_SPELLING: dict[Unit, str] = {
    Unit.FAHRENHEIT: "F",
    Unit.CELSIUS: "C",
    Unit.POUND: "lbs",
    Unit.KILOGRAM: "kg",
    Unit.MG_PER_DL: "mg/dL",
    Unit.MMOL_PER_L: "mmol/L",
    Unit.PER_MINUTE: "/min",
    Unit.MMHG: "mmHg",
    Unit.PERCENT: "%",
}


def _accepted_units(kind: VitalKind) -> tuple[Unit, ...]:
    """Units a device may send ``kind`` in, its default first."""
    default = DEFAULT_DEVICE_UNITS[kind]
    others = tuple(u for u in ACCEPTED_UNITS.get(kind, (CANONICAL_UNIT[kind],)) if u != default)
    return (default, *others)


_UNITS_FOR: dict[VitalKind, tuple[Unit, ...]] = {kind: _accepted_units(kind) for kind in VitalKind}


def _spellings(units: tuple[Unit, ...]) -> str:
    """The spellings accepted for ``units``, for an error message."""
    preferred = [_PREFERRED_SPELLING[u] for u in units]
    more = [
        alias for alias, unit in UNIT_ALIASES.items()
        if unit in units and alias not in {p.lower() for p in preferred}
    ]
    return ", ".join(preferred) + (f" (any case; also {', '.join(more)})" if more else "")


_SPELLINGS_FOR: dict[VitalKind, str] = {kind: _spellings(_UNITS_FOR[kind]) for kind in VitalKind}


def _fmt_bound(value: float) -> str:
    """A range bound for a message: at most 3 decimals, at least one (68.0, 0.441)."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _range_text(kind: VitalKind, unit: Unit) -> str:
    """The plausible range of ``kind`` in the unit the device used, e.g. ``68.0–114.8 [degF]``."""
    rng = PLAUSIBLE_RANGES[kind]
    low, high = sorted((from_canonical(kind, rng.low, unit), from_canonical(kind, rng.high, unit)))
    return f"{_fmt_bound(low)}–{_fmt_bound(high)} {unit.value}"


_RANGE_TEXT: dict[tuple[VitalKind, Unit], str] = {
    (kind, unit): _range_text(kind, unit) for kind in VitalKind for unit in _UNITS_FOR[kind]
}
_PERCENT_TEXT = f"{_fmt_bound(PERCENT_RANGE.low)}–{_fmt_bound(PERCENT_RANGE.high)} %"
_NO_VITAL = "no vital sign in the reading (expected one of " + ", ".join(VITAL_FIELDS) + ")"


@dataclass(frozen=True, slots=True)
class BatchParse:
    """What a payload held: the readings that parsed and, by index, why the others did not.

    A batch succeeds partially (as the seed's did): one bad reading does not refuse its
    neighbours. ``total`` is the number of readings the payload held.
    """

    device_id: str | None
    readings: list[tuple[int, Reading]]
    errors: dict[int, dict[str, str]]
    total: int


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything a parser needs besides the payload itself."""

    input: InputKind
    received_at: datetime
    now: datetime
    naive_zone: tzinfo
    max_future_skew: timedelta
    raw: str | None
    source_ref: str | None


def _context(
    input: InputKind,
    received_at: datetime,
    now: datetime | None,
    naive_zone: tzinfo,
    max_future_skew: timedelta,
    raw: str | None,
    source_ref: str | None,
) -> _Context:
    """Bundle the parser arguments, insisting on aware datetimes (a naive one is our bug)."""
    received = require_aware(received_at, "received_at")
    current = received if now is None else require_aware(now, "now")
    return _Context(input, received, current, naive_zone, max_future_skew, raw, source_ref)


# --- JSON ---------------------------------------------------------------------------------------


def _body_error(reason: str) -> PayloadError:
    """An error with the payload as a whole."""
    return PayloadError({"body": reason}, summarize({"body": reason}, "payload"))


def _reject_constant(name: str) -> object:
    """json.loads hook: NaN and ±Infinity are not JSON, and not a measurement."""
    raise _body_error(f"{name} is not valid JSON: send a number, or null if not measured")


def _finite_float(text: str) -> float:
    """json.loads hook: a number like 1e400 would silently become infinity."""
    value = float(text)
    if math.isinf(value):
        raise _body_error(f"number {text[:30]} is too large")
    return value


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json.loads hook: a key sent twice ("heart_rate": 80, "heart_rate": 180) is ambiguous."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _body_error(f"duplicate key {quote(key)} in a JSON object")
            seen.add(key)
    return obj


# What json.loads(text, **hooks) builds on every call, built once (stateless; the stdlib shares
# its own default decoder between threads the same way).
_STRICT_JSON = json.JSONDecoder(
    parse_constant=_reject_constant,
    parse_float=_finite_float,
    object_pairs_hook=_object_without_duplicates,
)
_STRICT_SCAN = _STRICT_JSON.scan_once


def decode_json(data: bytes | str) -> object:
    """Decode a payload body as strict JSON (UTF-8; a leading BOM is accepted and dropped).

    Refuses what ``json.loads`` lets through but no measurement can mean: NaN and Infinity
    constants, numbers too large for a float, and duplicate keys. Raises ``PayloadError`` with
    the reason under ``"body"``.
    """
    if type(data) is str:  # what the REST receiver passes: tested first
        text = data[1:] if data[:1] == "\ufeff" else data
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not valid UTF-8 (bad byte 0x{raw[exc.start]:02x} at offset {exc.start})"
            raise _body_error(reason) from None
    elif isinstance(data, str):
        text = data[1:] if data.startswith("\ufeff") else data
    else:
        raise TypeError(f"decode_json takes bytes or str, not {type(data).__name__}")
    if text[:1] == "{" and text[-1:] == "}":
        # A device's object as sent, without surrounding whitespace: the C scanner directly
        # (JSONDecoder.decode adds two regex matches and two Python frames). Anything it does
        # not take whole (or refuses) goes the general way below, which words the error.
        try:
            obj, end = _STRICT_SCAN(text, 0)
        except (StopIteration, ValueError, PayloadError, RecursionError):
            pass
        else:
            if end == len(text):
                return obj
    if not text.strip():
        raise _body_error("empty body: expected a JSON object")
    try:
        return _STRICT_JSON.decode(text)
    except PayloadError:
        raise
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise _body_error(reason) from None
    except RecursionError:
        raise _body_error("invalid JSON: nested too deeply") from None
    except ValueError:
        # An integer of more than sys.get_int_max_str_digits() digits.
        raise _body_error("invalid JSON: a number has too many digits") from None


# --- Fields -------------------------------------------------------------------------------------


def _device_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a device id, or None. Plain comparisons: it runs per reading."""
    if not isinstance(value, str):
        return f"must be a string: the device's registered id (got {describe_json_type(value)})"
    if not value:
        return "must not be empty"
    if len(value) > MAX_DEVICE_ID_CHARS:
        return f"is {len(value)} characters long; at most {MAX_DEVICE_ID_CHARS}"
    if not value.isprintable():
        return "must not contain control characters"
    if value[0].isspace() or value[-1].isspace():
        return "must not begin or end with whitespace"
    return None


def _to_number(value: object) -> float:
    """A JSON number as a float; ``ValueError`` with the reason for anything else."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, float):
        number = value
    elif isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("is too large a number") from None
    elif isinstance(value, str):
        raise ValueError("must be a number, not a string")
    else:
        raise ValueError(f"must be a number, not {describe_json_type(value)}")
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _show(sent: object, number: float) -> str:
    """A device's number as it sent it (101.5, 37), short even for absurd magnitudes."""
    if abs(number) >= 1e15:
        return f"{number:.6g}"
    return str(sent) if isinstance(sent, int) else repr(number)


def _plausible(
    kind: VitalKind, sent: object, number: float, unit: Unit, unit_field: str, unit_given: bool
) -> float:
    """``number`` in ``unit`` converted to canonical, or ``ValueError`` saying the range.

    A temperature that is implausible as the default °F but plausible as °C is almost certainly
    a Celsius device that left out its unit (the seed stored 37 °F and alarmed on it): say so.
    """
    canonical = to_canonical(kind, number, unit)
    rng = PLAUSIBLE_RANGES[kind]
    if rng.contains(canonical):
        return canonical
    if (
        kind is VitalKind.TEMPERATURE
        and not unit_given
        and unit is Unit.FAHRENHEIT
        and rng.contains(to_canonical(kind, number, Unit.CELSIUS))
    ):
        raise ValueError(
            f'{_show(sent, number)} read as °F (no {unit_field} given) is implausible; '
            f'send {unit_field} "C"'
        )
    raise ValueError(f"{_show(sent, number)} out of the plausible range {_RANGE_TEXT[kind, unit]}")


def _unit_field(
    obj: dict[str, object], field: str, kind: VitalKind, errors: dict[str, str]
) -> tuple[Unit | None, bool]:
    """The unit ``obj[field]`` names for ``kind`` and whether it was given; None when bad."""
    text = obj.get(field)
    if text is None:
        return DEFAULT_DEVICE_UNITS[kind], False
    if not isinstance(text, str):
        errors[field] = (
            f"must be a string naming a unit, not {describe_json_type(text)}; "
            f"accepted: {_SPELLINGS_FOR[kind]}"
        )
        return None, True
    unit = parse_unit(text)
    if unit is None or unit not in _UNITS_FOR[kind]:
        what = "unknown unit" if unit is None else f"not a unit of {kind.value}:"
        errors[field] = f"{what} {quote(text)}; accepted: {_SPELLINGS_FOR[kind]}"
        return None, True
    return unit, True


def _percent_field(obj: dict[str, object], field: str, errors: dict[str, str]) -> float | None:
    """An optional 0–100 % device figure (signal quality, battery level)."""
    value = obj.get(field)
    if value is None:
        return None
    try:
        number = _to_number(value)
    except ValueError as exc:
        errors[field] = str(exc)
        return None
    if not PERCENT_RANGE.contains(number):
        errors[field] = f"{_show(value, number)} out of the range {_PERCENT_TEXT}"
        return None
    return number


def _notes_field(obj: dict[str, object], errors: dict[str, str]) -> str | None:
    """Optional free text, bounded, and storable as UTF-8 (no lone surrogates from \\ud800)."""
    notes = obj.get("notes")
    if notes is None:
        return None
    if not isinstance(notes, str):
        errors["notes"] = f"must be a string, not {describe_json_type(notes)}"
        return None
    if len(notes) > MAX_NOTES_CHARS:
        errors["notes"] = f"is {len(notes)} characters long; at most {MAX_NOTES_CHARS}"
        return None
    if not notes.isascii():
        try:
            notes.encode("utf-8")
        except UnicodeEncodeError:
            errors["notes"] = "contains an invalid Unicode escape (a lone surrogate)"
            return None
    return notes


def _timestamp_field(
    obj: dict[str, object], field: str, ctx: _Context, errors: dict[str, str]
) -> datetime | None:
    """The device's measurement time, required, parsed and bounded."""
    if field not in obj:
        errors[field] = 'required: the time the device measured (e.g. "2025-11-17T10:30:00Z")'
        return None
    try:
        measured_at = parse_device_timestamp(obj[field], naive_zone=ctx.naive_zone)
    except ValueError as exc:
        errors[field] = str(exc)
        return None
    problem = check_measured_at(measured_at, now=ctx.now, max_future_skew=ctx.max_future_skew)
    if problem is not None:
        errors[field] = problem
        return None
    return measured_at


def _data_source(input: InputKind) -> DataSource:
    """A value typed in by a clinician is manual; everything else came from a device."""
    return DataSource.MANUAL if input is InputKind.MANUAL else DataSource.DEVICE


# --- InHealth reading object --------------------------------------------------------------------


def _inhealth_device_id(
    obj: dict[str, object], context_id: str | None, context_name: str, errors: dict[str, str]
) -> str | None:
    """The reading's device id: its own, the context's, and both must agree."""
    own = obj.get("device_id")
    if own is None:
        if context_id is None:
            errors["device_id"] = "required: the device's registered id"
            return None
        problem = _device_id_problem(context_id)
        if problem is not None:
            errors["device_id"] = problem
            return None
        return context_id
    problem = _device_id_problem(own)
    if problem is not None or not isinstance(own, str):
        errors["device_id"] = problem or "must be a string"
        return None
    if context_id is not None and own != context_id:
        errors["device_id"] = (
            f"{quote(own)} does not match the {context_name} device_id {quote(context_id)}"
        )
        return None
    return own


# Every vital with its InHealth field name, in VitalKind order (looked up once, not per reading).
_KIND_FIELDS: tuple[tuple[VitalKind, str], ...] = tuple((kind, kind.value) for kind in VitalKind)


def _inhealth(
    obj: dict[str, object], ctx: _Context, context_id: str | None, context_name: str
) -> tuple[Reading | None, dict[str, str]]:
    """Parse one InHealth reading object; every bad field is reported, not just the first."""
    errors: dict[str, str] = {}
    device_id = _inhealth_device_id(obj, context_id, context_name, errors)
    measured_at = _timestamp_field(obj, "timestamp", ctx, errors)

    units: dict[VitalKind, tuple[Unit | None, bool]] = {
        kind: _unit_field(obj, field, kind, errors) for kind, field in INHEALTH_UNIT_FIELDS.items()
    }
    measurements: list[Measurement] = []
    sent_any = False
    for kind, field in _KIND_FIELDS:
        sent = obj.get(field)
        if sent is None:  # absent or null: not measured
            continue
        sent_any = True
        try:
            number = _to_number(sent)
        except ValueError as exc:
            errors[field] = str(exc)
            continue
        unit, unit_given = units.get(kind, (DEFAULT_DEVICE_UNITS[kind], False))
        if unit is None:  # the unit field's error says why
            continue
        unit_field = INHEALTH_UNIT_FIELDS.get(kind, "unit")
        try:
            value = _plausible(kind, sent, number, unit, unit_field, unit_given)
        except ValueError as exc:
            errors[field] = str(exc)
            continue
        measurements.append(Measurement(kind, value, number, unit))
    if not sent_any:
        errors["vitals"] = _NO_VITAL
    _check_blood_pressure(obj, measurements, errors)

    signal_quality = _percent_field(obj, "signal_quality", errors)
    battery_level = _percent_field(obj, "battery_level", errors)
    notes = _notes_field(obj, errors)
    if errors or device_id is None or measured_at is None:
        return None, errors
    return Reading(
        device_id=device_id,
        measured_at=measured_at,
        measurements=tuple(measurements),
        input=ctx.input,
        received_at=ctx.received_at,
        data_source=_data_source(ctx.input),
        signal_quality=signal_quality,
        battery_level=battery_level,
        notes=notes,
        source_ref=ctx.source_ref,
        raw=ctx.raw,
    ), errors


def _check_blood_pressure(
    obj: dict[str, object], measurements: list[Measurement], errors: dict[str, str]
) -> None:
    """Systolic and diastolic come as a pair, diastolic the lower (a cuff measures both)."""
    systolic_field, diastolic_field = VitalKind.SYSTOLIC_BP.value, VitalKind.DIASTOLIC_BP.value
    has_systolic = obj.get(systolic_field) is not None
    has_diastolic = obj.get(diastolic_field) is not None
    if has_systolic and not has_diastolic:
        errors.setdefault(diastolic_field, f"required with {systolic_field}")
    elif has_diastolic and not has_systolic:
        errors.setdefault(systolic_field, f"required with {diastolic_field}")
    values = {m.kind: m for m in measurements}
    systolic = values.get(VitalKind.SYSTOLIC_BP)
    diastolic = values.get(VitalKind.DIASTOLIC_BP)
    if systolic is not None and diastolic is not None and diastolic.value > systolic.value:
        errors[diastolic_field] = (
            f"{_show(obj[diastolic_field], diastolic.original_value)} must not be above "
            f"{systolic_field} ({_show(obj[systolic_field], systolic.original_value)})"
        )


def _not_an_object(obj: object, what: str) -> PayloadError:
    """The error for a payload that is not a JSON object at all."""
    return _body_error(f"expected a JSON object ({what}), not {describe_json_type(obj)}")


def parse_inhealth_reading(
    obj: object,
    *,
    input: InputKind,
    received_at: datetime,
    now: datetime | None = None,
    device_id: str | None = None,
    naive_zone: tzinfo = UTC,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    raw: str | None = None,
    source_ref: str | None = None,
) -> Reading:
    """Parse the InHealth reading object (REST ``/api/iot/vitals/``, file drop).

    ``device_id`` is the id the context implies (the authenticated device, a batch's top-level
    id); the object's own ``device_id``, if any, must equal it. ``now`` defaults to
    ``received_at``. Raises ``PayloadError`` naming every bad field.
    """
    fast = _plain_inhealth(
        obj, input, received_at, now, device_id, naive_zone, max_future_skew, raw, source_ref
    )
    if fast is not None:
        return fast
    ctx = _context(input, received_at, now, naive_zone, max_future_skew, raw, source_ref)
    if not isinstance(obj, dict):
        raise _not_an_object(obj, "a reading")
    reading, errors = _inhealth(obj, ctx, device_id, "expected")
    if reading is None:
        raise PayloadError(errors)
    return reading


def _batch_items(
    obj: object, device_id: str | None, max_readings: int
) -> tuple[list[object], str | None]:
    """A batch's ``readings`` and the device id they inherit; ``PayloadError`` for the batch
    as a whole (see :func:`parse_inhealth_batch`)."""
    if not isinstance(obj, dict):
        raise _not_an_object(obj, 'with "device_id" and "readings"')
    whole: dict[str, str] = {}
    top_id = obj.get("device_id")
    if top_id is not None:
        problem = _device_id_problem(top_id)
        if problem is not None or not isinstance(top_id, str):
            whole["device_id"] = problem or "must be a string"
        elif device_id is not None and top_id != device_id:
            whole["device_id"] = (
                f"{quote(top_id)} does not match the expected device_id {quote(device_id)}"
            )
    readings = obj.get("readings")
    if readings is None:
        whole["readings"] = "required: a list of reading objects"
    elif not isinstance(readings, list):
        whole["readings"] = f"must be a list of reading objects, not {describe_json_type(readings)}"
    elif not readings:
        whole["readings"] = "is empty: send at least one reading"
    elif len(readings) > max_readings:
        whole["readings"] = (
            f"has {len(readings)} readings; at most {max_readings} are accepted per batch"
        )
    if whole or not isinstance(readings, list):
        raise PayloadError(whole, summarize(whole, "batch"))

    context_id = top_id if isinstance(top_id, str) else device_id
    if context_id is None:
        missing = [
            index for index, item in enumerate(readings)
            if isinstance(item, dict) and item.get("device_id") is None
        ]
        if missing:
            shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            reason = f"required: at top level, or in every reading (missing in readings {shown})"
            whole = {"device_id": reason}
            raise PayloadError(whole, summarize(whole, "batch"))

    return readings, context_id


def parse_inhealth_batch(
    obj: object,
    *,
    input: InputKind,
    received_at: datetime,
    now: datetime | None = None,
    device_id: str | None = None,
    naive_zone: tzinfo = UTC,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    max_readings: int = DEFAULT_MAX_BATCH,
    raw: str | None = None,
    source_ref: str | None = None,
) -> BatchParse:
    """Parse ``{"device_id": ..., "readings": [...]}`` with per-reading partial success.

    Raises ``PayloadError`` only for the request as a whole (not an object, ``readings``
    missing, not a list, empty or over ``max_readings``, no device id anywhere). Each reading
    inherits the top-level ``device_id`` (or the context's ``device_id``, which the top-level
    one must equal); a reading naming a different device is an error for that reading.
    ``raw`` and ``source_ref`` are attached to every reading; the index in the result says
    which element of ``readings`` it was. (:func:`parse_inhealth_readings`' readings, each
    paired with its index: MQTT, Kinesis and the file drop take the same fast ways as REST.)
    """
    batch = parse_inhealth_readings(
        obj, input=input, received_at=received_at, now=now, device_id=device_id,
        naive_zone=naive_zone, max_future_skew=max_future_skew, max_readings=max_readings,
        raw=raw, source_ref=source_ref,
    )
    indexes = range(len(batch.readings)) if batch.indexes is None else batch.indexes
    return BatchParse(device_id=batch.device_id,
                      readings=list(zip(indexes, batch.readings, strict=True)),
                      errors=batch.errors, total=batch.total)


@dataclass(frozen=True, slots=True)
class BatchReadings:
    """A batch as :func:`parse_inhealth_readings` gives it: the readings that parsed as one
    list, in order, and by index why the others did not.

    ``indexes[i]`` is the place in the payload's ``readings`` of ``readings[i]``; None when
    every reading parsed (then it is ``i``). ``total`` is the number of readings the payload
    held.
    """

    device_id: str | None
    readings: list[Reading]
    indexes: list[int] | None
    errors: dict[int, dict[str, str]]
    total: int


def parse_inhealth_readings(
    obj: object,
    *,
    input: InputKind,
    received_at: datetime,
    now: datetime | None = None,
    device_id: str | None = None,
    naive_zone: tzinfo = UTC,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    max_readings: int = DEFAULT_MAX_BATCH,
    raw: str | None = None,
    source_ref: str | None = None,
) -> BatchReadings:
    """:func:`parse_inhealth_batch`'s readings as one list, for the REST receiver, which hands
    them to the pipeline as they are: the same readings, errors and refusals, without an
    ``(index, reading)`` pair per reading.

    A batch's readings share their device, clocks and source, so the usual reading (one
    vital, a timestamp, at most the batch's own device_id) is built by
    ``_plain_one_vital`` with those worked out once per batch; anything else goes the way
    :func:`parse_inhealth_reading` takes (``_plain_inhealth``, then ``_inhealth``).
    """
    ctx = _context(input, received_at, now, naive_zone, max_future_skew, raw, source_ref)
    items, context_id = _batch_items(obj, device_id, max_readings)
    fast = (
        context_id if context_id is not None and naive_zone is UTC
        and _fast_device_id(context_id) is not None else None
    )
    received = ctx.received_at
    latest = ctx.now + max_future_skew
    source = _MANUAL_SOURCE if input is _MANUAL_INPUT else _DEVICE_SOURCE
    parsed: list[Reading] = []
    indexes: list[int] | None = None
    errors: dict[int, dict[str, str]] = {}
    for index, item in enumerate(items):
        reading = None
        if fast is not None and type(item) is dict:
            reading = _plain_one_vital(
                item, fast, latest, received, input, source, raw, source_ref
            )
        if reading is None:
            if not isinstance(item, dict):
                problems = {
                    "body": f"expected a JSON object (a reading), not {describe_json_type(item)}"
                }
            else:
                reading = _plain_inhealth(
                    item, input, received_at, now, context_id, naive_zone, max_future_skew,
                    raw, source_ref,
                )
                if reading is None:
                    reading, problems = _inhealth(item, ctx, context_id, "batch's")
            if reading is None:
                errors[index] = problems
                if indexes is None:
                    indexes = list(range(index))  # every reading before this one parsed
                continue
        parsed.append(reading)
        if indexes is not None:
            indexes.append(index)
    if context_id is None:
        ids = {reading.device_id for reading in parsed}
        context_id = ids.pop() if len(ids) == 1 else None
    return BatchReadings(context_id, parsed, indexes, errors, len(items))


# --- Bedside monitor message --------------------------------------------------------------------


def _datatype(obj: dict[str, object], errors: dict[str, str]) -> VitalKind | None:
    """The vital a bedside message's ``datatype`` names."""
    name = obj.get("datatype")
    if name is None:
        errors["datatype"] = f"required: the vital measured, one of {_DATATYPE_HINT}"
        return None
    if not isinstance(name, str):
        errors["datatype"] = (
            f"must be a string, not {describe_json_type(name)}; accepted: {_DATATYPE_HINT}"
        )
        return None
    key = name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    kind = _DATATYPE_NAMES.get(key)
    if kind is None:
        errors["datatype"] = f"unknown datatype {quote(name)}; accepted: {_DATATYPE_HINT}"
    return kind


def _bedside(
    obj: dict[str, object], ctx: _Context, device_id: str | None
) -> tuple[Reading | None, dict[str, str]]:
    """Parse one bedside message; every bad field is reported, not just the first."""
    errors: dict[str, str] = {}
    given = device_id if device_id is not None else obj.get("deviceid")
    resolved: str | None = None
    if given is None:
        errors["deviceid"] = "required: the device's registered id"
    else:
        problem = _device_id_problem(given)
        if problem is not None or not isinstance(given, str):
            errors["deviceid"] = problem or "must be a string"
        else:
            resolved = given
    measured_at = _timestamp_field(obj, "timestamp", ctx, errors)
    kind = _datatype(obj, errors)

    unit: Unit | None = None
    unit_given = False
    if kind is not None:
        unit, unit_given = _unit_field(obj, "unit", kind, errors)
    elif obj.get("unit") is not None:
        text = obj["unit"]
        if not isinstance(text, str) or parse_unit(text) is None:
            errors["unit"] = "not a unit this station knows"

    measurement: Measurement | None = None
    sent = obj.get("value")
    if sent is None:
        errors["value"] = "required: the measured value"
    else:
        try:
            number = _to_number(sent)
        except ValueError as exc:
            errors["value"] = str(exc)
        else:
            if kind is not None and unit is not None:
                try:
                    value = _plausible(kind, sent, number, unit, "unit", unit_given)
                except ValueError as exc:
                    errors["value"] = str(exc)
                else:
                    measurement = Measurement(kind, value, number, unit)

    signal_quality = _percent_field(obj, "signal_quality", errors)
    battery_level = _percent_field(obj, "battery_level", errors)
    if errors or measurement is None or measured_at is None or resolved is None:
        return None, errors
    return Reading(
        device_id=resolved,
        measured_at=measured_at,
        measurements=(measurement,),
        input=ctx.input,
        received_at=ctx.received_at,
        data_source=_data_source(ctx.input),
        signal_quality=signal_quality,
        battery_level=battery_level,
        source_ref=ctx.source_ref,
        raw=ctx.raw,
    ), errors


# The common message, parsed without the general path's bookkeeping. MQTT and Kinesis bring
# thousands of one-vital messages a second and nearly all of them are well formed: the
# general path costs ~10 us each (a context object, an error map, the datatype normalised
# with four string operations, Enum-keyed look-ups, every optional field asked for). The fast
# path takes only a message of exactly the four fields, in the spellings the reference
# publisher sends, and gives up (None) at the first thing it does not like: the general path
# then parses the message again and names the problem, so errors are worded in one place.

# Per datatype, as sent: the vital, the unit assumed without "unit", the conversion to the
# canonical unit (None: already canonical) and the plausible range in canonical units.
# A vital whose default unit needs a conversion this table lacks is left to the general path.
_FastVital = tuple[VitalKind, Unit, Callable[[float], float] | None, float, float]
_FAST_CONVERSIONS: dict[Unit, Callable[[float], float]] = {
    Unit.FAHRENHEIT: fahrenheit_to_celsius,
    Unit.POUND: pounds_to_kilograms,
}


def _fast_vitals() -> dict[str, _FastVital]:
    """The fast path's table: the normalised datatype names and the publisher's spellings."""
    table: dict[str, _FastVital] = {}
    for name, kind in _DATATYPE_NAMES.items():
        unit = DEFAULT_DEVICE_UNITS[kind]
        if unit is CANONICAL_UNIT[kind]:
            convert = None
        elif unit in _FAST_CONVERSIONS:
            convert = _FAST_CONVERSIONS[unit]
        else:
            continue
        entry = (kind, unit, convert, PLAUSIBLE_RANGES[kind].low, PLAUSIBLE_RANGES[kind].high)
        table[name] = entry
        for spelling in BEDSIDE_DATATYPES:
            if spelling.lower() == name:
                table[spelling] = entry
    return table


_FAST_VITALS: dict[str, _FastVital] = _fast_vitals()

# The fast paths build their Measurement and Reading without the frozen dataclasses'
# ``__init__``, which sets each field with ``object.__setattr__(self, name, value)`` (~1,600
# instructions a field). An instance of a plain class with the same slots is filled by
# ordinary attribute stores (which the interpreter specialises to a slot write) and then
# given the frozen class with ``__class__`` assignment, which CPython allows between classes
# of the same layout: 5,400 instructions for a Measurement and a Reading together, against
# 13,500 through each slot descriptor's ``__set__`` (a call that packs its arguments in a
# tuple). The object is the one ``__init__`` makes (equal, frozen, the same type). The field
# lists are checked against the classes at import, and one draft of each is made and compared
# with the class's own construction, so a field added there without being added here, or a
# layout the assignment refuses, fails at once instead of leaving a slot unset.
_MEASUREMENT_FIELDS = ("kind", "value", "original_value", "original_unit")
_READING_FIELDS = (
    "device_id", "measured_at", "measurements", "input", "received_at", "data_source",
    "signal_quality", "battery_level", "notes", "source_ref", "raw",
)


class _MeasurementDraft:
    """A Measurement being filled in; becomes one by ``__class__`` assignment."""

    __slots__ = _MEASUREMENT_FIELDS


class _ReadingDraft:
    """A Reading being filled in; becomes one by ``__class__`` assignment."""

    __slots__ = _READING_FIELDS


def _check_layout(cls: type, names: tuple[str, ...]) -> None:
    """``cls`` has just the fields ``names``, as slots, and nothing run after ``__init__``."""
    slots = cls.__dict__.get("__slots__")
    if tuple(f.name for f in dataclass_fields(cls)) != names or slots != names:
        raise RuntimeError(f"payloads: {cls.__name__}'s fields are not {names}")
    if hasattr(cls, "__post_init__"):
        raise RuntimeError(f"payloads: {cls.__name__} has a __post_init__ the fast path skips")


_check_layout(Measurement, _MEASUREMENT_FIELDS)
_check_layout(Reading, _READING_FIELDS)


def _measurement(kind: VitalKind, value: float, original_value: float, unit: Unit) -> Measurement:
    """``Measurement(kind, value, original_value, unit)``, built as the fast paths build it."""
    made = _MeasurementDraft()
    made.kind = kind
    made.value = value
    made.original_value = original_value
    made.original_unit = unit
    made.__class__ = Measurement  # type: ignore[assignment]
    return made  # type: ignore[return-value]


def _reading(
    device_id: str, measured_at: datetime, measurements: tuple[Measurement, ...],
    input: InputKind, received_at: datetime, data_source: DataSource,
    signal_quality: float | None, battery_level: float | None, notes: str | None,
    source_ref: str | None, raw: str | None,
) -> Reading:
    """``Reading(...)`` with every field given in order, built as the fast paths build it."""
    made = _ReadingDraft()
    made.device_id = device_id
    made.measured_at = measured_at
    made.measurements = measurements
    made.input = input
    made.received_at = received_at
    made.data_source = data_source
    made.signal_quality = signal_quality
    made.battery_level = battery_level
    made.notes = notes
    made.source_ref = source_ref
    made.raw = raw
    made.__class__ = Reading  # type: ignore[assignment]
    return made  # type: ignore[return-value]


def _check_drafts() -> None:
    """A draft of each, given its class, is what the class's own ``__init__`` makes."""
    at = datetime(2025, 1, 1, tzinfo=UTC)
    made = _measurement(VitalKind.HEART_RATE, 60.0, 60.0, Unit.PER_MINUTE)
    expected = Measurement(VitalKind.HEART_RATE, 60.0, 60.0, Unit.PER_MINUTE)
    reading = _reading("D", at, (made,), InputKind.REST, at, DataSource.DEVICE, 1.0, 2.0, "n",
                       "s", "r")
    built = Reading("D", at, (expected,), InputKind.REST, at, DataSource.DEVICE, 1.0, 2.0, "n",
                    "s", "r")
    if (
        type(made) is not Measurement or made != expected or type(reading) is not Reading
        or reading != built or reading.raw != built.raw or hash(reading) != hash(built)
    ):
        raise RuntimeError("payloads: a draft given its class is not the class's own object")


_check_drafts()


# Device ids already found valid: a ward has tens to hundreds of devices, each sending every
# second, and the checks (isprintable, whitespace at either end) are the same every time.
# Bounded; emptied when full. Set operations are atomic under the GIL (several inputs).
_VALID_DEVICE_IDS: set[str] = set()
_VALID_DEVICE_IDS_MAX = 4096


def _fast_device_id(value: object) -> str | None:
    """``value`` when it is a valid device id, else None."""
    if type(value) is not str:
        return None
    if value in _VALID_DEVICE_IDS:
        return value
    if _device_id_problem(value) is not None:
        return None
    if len(_VALID_DEVICE_IDS) >= _VALID_DEVICE_IDS_MAX:
        _VALID_DEVICE_IDS.clear()
    _VALID_DEVICE_IDS.add(value)
    return value


# The InHealth reading object's plain case (REST single readings, file drop): the fields
# device_id, timestamp, vitals in their default units, signal_quality and battery_level, and
# nothing else. The general path asks for every field the format has (units, every vital,
# notes) through a context object and an error map, and it was a quarter of the REST
# endpoint's time per reading. As for the bedside message, the fast path gives up (None) at
# the first thing it does not take, and the general path parses again and words any error:
# a reading it returns is the one the general path would return (tests/domain/test_payloads.py
# compares them).

# Per InHealth vital field: its place in the general path's order (VitalKind order), the
# vital, the unit assumed without a unit field, the conversion to the canonical unit (None:
# already canonical), and the plausible range in canonical units.
_PlainField = tuple[int, VitalKind, Unit, Callable[[float], float] | None, float, float]


def _plain_inhealth_fields() -> dict[str, _PlainField]:
    table: dict[str, _PlainField] = {}
    for order, (kind, field) in enumerate(_KIND_FIELDS):
        unit = DEFAULT_DEVICE_UNITS[kind]
        if unit is CANONICAL_UNIT[kind]:
            convert = None
        elif unit in _FAST_CONVERSIONS:
            convert = _FAST_CONVERSIONS[unit]
        else:
            continue
        table[field] = (order, kind, unit, convert, PLAUSIBLE_RANGES[kind].low,
                        PLAUSIBLE_RANGES[kind].high)
    return table


_PLAIN_INHEALTH: dict[str, _PlainField] = _plain_inhealth_fields()
_PLAIN_SYSTOLIC = _PLAIN_INHEALTH[VitalKind.SYSTOLIC_BP._value_][0]
_PLAIN_DIASTOLIC = _PLAIN_INHEALTH[VitalKind.DIASTOLIC_BP._value_][0]
_PLAIN_PAIR = tuple(sorted((_PLAIN_SYSTOLIC, _PLAIN_DIASTOLIC)))


# The vitals a reading of one vital may carry on _plain_one_vital's way: not the blood
# pressure pair, which must come together.
_PLAIN_ONE: dict[str, _PlainField] = {
    field: entry for field, entry in _PLAIN_INHEALTH.items()
    if entry[0] != _PLAIN_SYSTOLIC and entry[0] != _PLAIN_DIASTOLIC
}


def _plain_one_vital(
    item: dict[str, object],
    device_id: str,
    latest: datetime,
    received_at: datetime,
    input: InputKind,
    data_source: DataSource,
    raw: str | None,
    source_ref: str | None,
) -> Reading | None:
    """What :func:`_plain_inhealth` returns for a batch's usual reading - one vital, a
    timestamp, at most the batch's own ``device_id`` - when the batch's invariants are known:
    ``device_id`` valid, ``received_at`` in UTC, a time without offset read as UTC,
    ``latest`` the latest plausible time. None for anything else."""
    vital = sent = stamp = None
    for field, value in item.items():
        entry = _PLAIN_ONE.get(field)
        if entry is None:
            if field == "timestamp":
                stamp = value
                continue
            if field == "device_id" and value == device_id:
                continue
            return None  # a pressure, a unit, a level, notes: _plain_inhealth decides
        if value is None:  # null: not measured
            continue
        if vital is not None:
            return None  # a second vital
        vital, sent = entry, value
    if vital is None:
        return None
    sent_type = type(sent)
    if sent_type is int and -1e15 < sent < 1e15:  # type: ignore[operator]
        number = float(sent)  # type: ignore[arg-type]
    elif sent_type is float:
        number = sent  # type: ignore[assignment]
    else:
        return None
    _, kind, unit, convert, low, high = vital
    value = number if convert is None else convert(number)
    if not low <= value <= high:  # False for NaN, and infinities are out of range
        return None
    if type(stamp) is not str:
        return None
    measured_at = _plain_time(stamp)
    if measured_at is None:
        return None
    zone = measured_at.tzinfo
    if zone is None:
        measured_at = measured_at.replace(tzinfo=UTC)
    elif zone is not UTC:
        return None
    if measured_at > latest or measured_at < EARLIEST_PLAUSIBLE:
        return None
    made = _MeasurementDraft()  # _measurement(...) and _reading(...), inline
    made.kind = kind
    made.value = value
    made.original_value = number
    made.original_unit = unit
    made.__class__ = Measurement  # type: ignore[assignment]
    reading = _ReadingDraft()
    reading.device_id = device_id
    reading.measured_at = measured_at
    reading.measurements = (made,)
    reading.input = input
    reading.received_at = received_at
    reading.data_source = data_source
    reading.signal_quality = None
    reading.battery_level = None
    reading.notes = None
    reading.source_ref = source_ref
    reading.raw = raw
    reading.__class__ = Reading  # type: ignore[assignment]
    return reading  # type: ignore[return-value]


_MANUAL_INPUT = InputKind.MANUAL
_MANUAL_SOURCE = DataSource.MANUAL
_DEVICE_SOURCE = DataSource.DEVICE


def _plain_time(stamp: str) -> datetime | None:
    """A plain reading's timestamp, as the fast paths take it: YYYY-MM-DD[T ]HH:MM:SS, then
    .fff or .ffffff, then Z or nothing (the zone the device's clock is set to); naive, or in
    UTC for a Z. None for any other shape (the general parser then decides and explains);
    fromisoformat checks the digits (ASCII only)."""
    length = len(stamp)
    if length < 19:
        return None
    body = length - 1 if stamp[-1] == "Z" else length
    marks = stamp[4:17:3]  # the characters at 4, 7, 10, 13 and 16
    if not (
        (marks == "--T::" or marks == "-- ::")
        and (body == 19 or ((body == 23 or body == 26) and stamp[19] == "."))
    ):
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def _plain_number(sent: object) -> float | None:
    """A JSON number as a float (as ``_to_number`` gives it), None for anything else."""
    sent_type = type(sent)
    if sent_type is float:
        return sent  # type: ignore[return-value] - checked just above
    if sent_type is int and -1e15 < sent < 1e15:  # type: ignore[operator]
        return float(sent)  # type: ignore[arg-type]
    return None


def _plain_inhealth(
    obj: object,
    input: InputKind,
    received_at: datetime,
    now: datetime | None,
    device_id: str | None,
    naive_zone: tzinfo,
    max_future_skew: timedelta,
    raw: str | None,
    source_ref: str | None,
) -> Reading | None:
    """What :func:`parse_inhealth_reading` returns for the plain case, else None.

    Written out for the usual cases (one or two vitals, a device id already found valid):
    no list or sort for up to two vitals, and the Measurement and Reading set slot by slot
    here rather than through ``_measurement``/``_reading``.
    """
    if type(obj) is not dict:
        return None
    stamp = obj.get("timestamp")
    own = obj.get("device_id")
    if type(stamp) is not str:
        return None
    if own is None:
        own = device_id
    elif device_id is not None and own != device_id:
        return None
    if type(own) is str and own in _VALID_DEVICE_IDS:  # _fast_device_id's usual answer
        resolved = own
    else:
        resolved = _fast_device_id(own)
        if resolved is None:
            return None
    first: Measurement | None = None
    second: Measurement | None = None
    first_order = second_order = 0
    more: list[tuple[int, Measurement]] | None = None
    signal_quality = battery_level = None
    for field, sent in obj.items():
        vital = _PLAIN_INHEALTH.get(field)
        if vital is None:
            if field == "device_id" or field == "timestamp":
                continue
            if field == "signal_quality" or field == "battery_level":
                if sent is None:
                    continue
                percent = _plain_number(sent)
                if percent is None or not 0.0 <= percent <= 100.0:
                    return None
                if field == "signal_quality":
                    signal_quality = percent
                else:
                    battery_level = percent
                continue
            return None  # a unit, notes, a field the format does not have: the general path
        if sent is None:  # null: not measured
            continue
        sent_type = type(sent)  # _plain_number, inline: it runs for every vital
        if sent_type is int and -1e15 < sent < 1e15:  # type: ignore[operator]
            number = float(sent)  # type: ignore[arg-type]
        elif sent_type is float:
            number = sent  # type: ignore[assignment]
        else:
            return None
        order, kind, unit, convert, low, high = vital
        value = number if convert is None else convert(number)
        if not low <= value <= high:  # False for NaN, and infinities are out of range
            return None
        made = _MeasurementDraft()  # _measurement(kind, value, number, unit), inline
        made.kind = kind
        made.value = value
        made.original_value = number
        made.original_unit = unit
        made.__class__ = Measurement  # type: ignore[assignment]
        if first is None:
            first, first_order = made, order
        elif second is None:
            second, second_order = made, order
        elif more is None:
            more = [(first_order, first), (second_order, second), (order, made)]
        else:
            more.append((order, made))
    if first is None:
        return None
    if second is not None and more is None:  # two vitals, in VitalKind order
        if second_order < first_order:
            first, second, first_order, second_order = second, first, second_order, first_order
        if first_order == _PLAIN_SYSTOLIC or first_order == _PLAIN_DIASTOLIC or (
            second_order == _PLAIN_SYSTOLIC or second_order == _PLAIN_DIASTOLIC
        ):
            # Only the pair itself, diastolic not above systolic.
            if (first_order, second_order) != _PLAIN_PAIR:
                return None
            systolic, diastolic = (
                (first, second) if first_order == _PLAIN_SYSTOLIC else (second, first)
            )
            if diastolic.value > systolic.value:
                return None
        measurements: tuple[Measurement, ...] = (first, second)
    elif more is not None:
        more.sort(key=_first)
        orders = [order for order, _ in more]
        has_systolic = _PLAIN_SYSTOLIC in orders
        if has_systolic != (_PLAIN_DIASTOLIC in orders):
            return None
        if has_systolic:
            values = {order: m.value for order, m in more}
            if values[_PLAIN_DIASTOLIC] > values[_PLAIN_SYSTOLIC]:
                return None
        measurements = tuple([m for _, m in more])
    else:
        if first_order == _PLAIN_SYSTOLIC or first_order == _PLAIN_DIASTOLIC:
            return None
        measurements = (first,)  # a batch's usual reading
    measured_at = _plain_time(stamp)
    if measured_at is None:
        return None
    zone = measured_at.tzinfo
    if zone is None:
        if naive_zone is not UTC:
            return None
        measured_at = measured_at.replace(tzinfo=UTC)
    elif zone is not UTC:
        return None
    received_at = _plain_received_at(measured_at, received_at, now, max_future_skew)
    if received_at is None:
        return None
    reading = _ReadingDraft()  # _reading(...), inline
    reading.device_id = resolved
    reading.measured_at = measured_at
    reading.measurements = measurements
    reading.input = input
    reading.received_at = received_at
    reading.data_source = _MANUAL_SOURCE if input is _MANUAL_INPUT else _DEVICE_SOURCE
    reading.signal_quality = signal_quality
    reading.battery_level = battery_level
    reading.notes = None
    reading.source_ref = source_ref
    reading.raw = raw
    reading.__class__ = Reading  # type: ignore[assignment]
    return reading  # type: ignore[return-value]


def _plain_received_at(
    measured_at: datetime, received_at: datetime, now: datetime | None,
    max_future_skew: timedelta,
) -> datetime | None:
    """The fast paths' clock check: ``received_at`` (made aware), or None when
    ``measured_at`` is too far ahead of ``now`` (default: ``received_at``) or before
    ``EARLIEST_PLAUSIBLE`` (the general path then words the error)."""
    if received_at.tzinfo is not UTC:
        received_at = require_aware(received_at, "received_at")
    if now is None:
        now = received_at
    elif now.tzinfo is not UTC:
        now = require_aware(now, "now")
    if measured_at > now + max_future_skew or measured_at < EARLIEST_PLAUSIBLE:
        return None
    return received_at


def _first(item: tuple[int, Measurement]) -> int:
    return item[0]


def parse_plain_bedside(
    obj: object,
    *,
    input: InputKind,
    received_at: datetime,
    now: datetime | None = None,
    device_id: str | None = None,
    naive_zone: tzinfo = UTC,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    raw: str | None = None,
    source_ref: str | None = None,
) -> Reading | None:
    """The bedside message ``{"deviceid", "timestamp", "datatype", "value"}`` and nothing else.

    For inputs that take thousands a second (MQTT): returns the reading
    :func:`parse_payload` would give, or None whenever the message is anything but the plain
    case (then ``parse_payload`` decides, and words any error). The timestamp must be
    ``YYYY-MM-DD[T ]HH:MM:SS[.ffffff]`` without offset, the value a JSON number in the default
    unit, within range.
    """
    if type(obj) is not dict or len(obj) != 4:
        return None
    own = obj.get("deviceid")
    stamp = obj.get("timestamp")
    datatype = obj.get("datatype")
    sent = obj.get("value")
    if own is None or type(stamp) is not str or type(datatype) is not str:
        return None
    resolved = _fast_device_id(own if device_id is None else device_id)
    vital = _FAST_VITALS.get(datatype)
    if resolved is None or vital is None:
        return None
    kind, unit, convert, low, high = vital
    sent_type = type(sent)
    if sent_type is float:
        number: float = sent  # type: ignore[assignment] - checked just above
    elif sent_type is int and -1e15 < sent < 1e15:  # type: ignore[operator]
        number = float(sent)  # type: ignore[arg-type]
    else:
        return None
    value = number if convert is None else convert(number)
    if not low <= value <= high:  # False for NaN, and infinities are out of range
        return None
    # The shape _has_iso_shape asks for, with seconds and no offset (fromisoformat takes
    # ASCII digits only, so a digit test per character is not needed).
    length = len(stamp)
    if not (
        (length == 19 or (length == 26 and stamp[19] == "."))
        and stamp[4] == "-" and stamp[7] == "-" and stamp[13] == ":" and stamp[16] == ":"
        and (stamp[10] == " " or stamp[10] == "T")
    ):
        return None
    try:
        measured_at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if measured_at.tzinfo is not None:
        return None
    if naive_zone is UTC:
        measured_at = measured_at.replace(tzinfo=UTC)
    else:
        try:
            measured_at = measured_at.replace(tzinfo=naive_zone).astimezone(UTC)
        except OverflowError:
            return None
    received_at = _plain_received_at(measured_at, received_at, now, max_future_skew)
    if received_at is None:
        return None
    return _reading(
        resolved, measured_at, (_measurement(kind, value, number, unit),), input, received_at,
        DataSource.MANUAL if input is InputKind.MANUAL else DataSource.DEVICE,
        None, None, None, source_ref, raw,
    )


def parse_bedside_message(
    obj: object,
    *,
    input: InputKind,
    received_at: datetime,
    now: datetime | None = None,
    device_id: str | None = None,
    naive_zone: tzinfo = UTC,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    raw: str | None = None,
    source_ref: str | None = None,
) -> Reading:
    """Parse the bedside monitor's ``{"deviceid", "timestamp", "datatype", "value"}`` message.

    ``device_id``, when given, overrides ``"deviceid"``: the reference publisher sends the same
    deviceid from every bed, so the MQTT input takes the id from the topic. Without ``"unit"``
    temperature is °F, weight lbs and glucose mg/dL, as the seed publisher sends. The value is
    never truncated (the seed consumer's ``int()`` read 101.5 °F as 101).
    """
    fast = parse_plain_bedside(
        obj, input=input, received_at=received_at, now=now, device_id=device_id,
        naive_zone=naive_zone, max_future_skew=max_future_skew, raw=raw, source_ref=source_ref,
    )
    if fast is not None:
        return fast
    ctx = _context(input, received_at, now, naive_zone, max_future_skew, raw, source_ref)
    if not isinstance(obj, dict):
        raise _not_an_object(obj, "a bedside message")
    reading, errors = _bedside(obj, ctx, device_id)
    if reading is None:
        raise PayloadError(errors, summarize(errors, "message"))
    return reading


# --- Auto-detection -----------------------------------------------------------------------------


def parse_payload(
    obj: object,
    *,
    input: InputKind,
    received_at: datetime,
    now: datetime | None = None,
    device_id: str | None = None,
    naive_zone: tzinfo = UTC,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    max_readings: int = DEFAULT_MAX_BATCH,
    raw: str | None = None,
    source_ref: str | None = None,
) -> BatchParse:
    """Parse whichever format ``obj`` is (MQTT, Kinesis and file inputs take all three).

    An object with ``"readings"`` is a batch, one with ``"datatype"`` a bedside message
    (``device_id`` overrides its ``deviceid``), anything else an InHealth reading (``device_id``
    must match its own). A single message comes back as a batch of one at index 0, with its
    field errors under ``errors[0]`` when it is invalid. Raises ``PayloadError`` only when the
    payload as a whole is unusable.
    """
    if type(obj) is dict and "datatype" in obj:
        fast = parse_plain_bedside(
            obj, input=input, received_at=received_at, now=now, device_id=device_id,
            naive_zone=naive_zone, max_future_skew=max_future_skew, raw=raw, source_ref=source_ref,
        )
        if fast is not None:
            return BatchParse(device_id=fast.device_id, readings=[(0, fast)], errors={}, total=1)
    if not isinstance(obj, dict):
        raise _not_an_object(obj, "a reading, a batch or a bedside message")
    if "readings" in obj:
        return parse_inhealth_batch(
            obj, input=input, received_at=received_at, now=now, device_id=device_id,
            naive_zone=naive_zone, max_future_skew=max_future_skew, max_readings=max_readings,
            raw=raw, source_ref=source_ref,
        )
    ctx = _context(input, received_at, now, naive_zone, max_future_skew, raw, source_ref)
    if "datatype" in obj:
        reading, errors = _bedside(obj, ctx, device_id)
    else:
        reading, errors = _inhealth(obj, ctx, device_id, "expected")
    if reading is None:
        if device_id is None:  # still name the device, if it named itself well, for the report
            own = obj.get("deviceid" if "datatype" in obj else "device_id")
            device_id = own if isinstance(own, str) and _device_id_problem(own) is None else None
        return BatchParse(device_id=device_id, readings=[], errors={0: errors}, total=1)
    return BatchParse(device_id=reading.device_id, readings=[(0, reading)], errors={}, total=1)


# --- Re-check of a built reading ----------------------------------------------------------------

_ACCEPTED_UNIT_SETS: dict[VitalKind, frozenset[Unit]] = {
    kind: frozenset(units) for kind, units in _UNITS_FOR.items()
}
_CANONICAL_RANGE_TEXT: dict[VitalKind, str] = {
    kind: _RANGE_TEXT[kind, CANONICAL_UNIT[kind]] for kind in VitalKind
}
# The same, keyed by the vital's text: an Enum member hashes in Python (``Enum.__hash__``) and
# its ``.value`` is a Python property, which made these look-ups most of the re-check's cost.
# A measurement's kind is first checked to be a VitalKind, so the text keys admit no other.
_SYSTOLIC = VitalKind.SYSTOLIC_BP._value_
_DIASTOLIC = VitalKind.DIASTOLIC_BP._value_
_CHECK_BY_TEXT: dict[str, tuple[float, float, frozenset[str]]] = {
    kind._value_: (
        PLAUSIBLE_RANGES[kind].low, PLAUSIBLE_RANGES[kind].high,
        frozenset(unit._value_ for unit in _ACCEPTED_UNIT_SETS[kind]),
    )
    for kind in VitalKind
}


def validate_reading(
    reading: Reading, *, now: datetime, max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
) -> dict[str, str]:
    """Re-check a built reading, whatever input built it; ``{}`` when it is valid.

    The pipeline runs this on every reading (tens of thousands a second), so it is plain
    comparisons and dict look-ups; messages are only formatted for failures. Keys are
    ``"device_id"``, ``"timestamp"``, ``"vitals"``, the ``VitalKind`` values,
    ``"signal_quality"``, ``"battery_level"`` and ``"notes"``.
    """
    errors: dict[str, str] = {}
    problem = _device_id_problem(reading.device_id)
    if problem is not None:
        errors["device_id"] = problem
    problem = check_measured_at(reading.measured_at, now=now, max_future_skew=max_future_skew)
    if problem is not None:
        errors["timestamp"] = problem
    measurements = reading.measurements
    if not measurements:
        errors["vitals"] = "no vital sign in the reading"
    seen: dict[str, float] = {}  # by the vital's text
    for m in measurements:
        kind = m.kind
        check = _CHECK_BY_TEXT.get(kind._value_) if type(kind) is VitalKind else None
        if check is None:
            errors["vitals"] = f"unknown vital {m.kind!r}"
            continue
        field: str = kind._value_
        if field in seen:
            errors[field] = "appears more than once in the reading"
            continue
        low, high, units = check
        value = m.value
        try:
            in_range = low <= value <= high  # False for NaN
        except TypeError:
            errors[field] = f"must be a number, not {describe_json_type(value)}"
            continue
        unit = m.original_unit
        if not in_range:
            errors[field] = f"{value!r} out of the plausible range {_CANONICAL_RANGE_TEXT[kind]}"
        elif type(unit) is not Unit or unit._value_ not in units:
            errors[field] = f"{m.original_unit!s} is not a unit of {field}"
        seen[field] = value
    systolic = seen.get(_SYSTOLIC)
    diastolic = seen.get(_DIASTOLIC)
    if systolic is not None and diastolic is not None and diastolic > systolic:
        errors.setdefault(
            _DIASTOLIC, f"{diastolic!r} must not be above {_SYSTOLIC} ({systolic!r})",
        )
    for field, level in (("signal_quality", reading.signal_quality),
                         ("battery_level", reading.battery_level)):
        if level is not None and not (PERCENT_RANGE.low <= level <= PERCENT_RANGE.high):
            errors[field] = f"{level!r} out of the range {_PERCENT_TEXT}"
    if reading.notes is not None and len(reading.notes) > MAX_NOTES_CHARS:
        errors["notes"] = f"is {len(reading.notes)} characters long; at most {MAX_NOTES_CHARS}"
    return errors


_PERCENT_LOW = PERCENT_RANGE.low
_PERCENT_HIGH = PERCENT_RANGE.high


def validate_readings(
    readings: Sequence[Reading], *, now: datetime,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
) -> dict[int, dict[str, str]]:
    """:func:`validate_reading` of each of ``readings``: the problems by index, ``{}`` when all
    are valid.

    For the pipeline's batches (a REST batch is hundreds of readings of one device): a reading
    of the plain kind is found valid with a few comparisons here - its device id already
    found valid in this call, a UTC time within the bounds (the latest computed once), each
    vital a known kind within its range in an accepted unit, no vital twice, no blood pressure
    pair, levels within 0-100 %, notes within their length. Anything else, valid or not, is
    judged by :func:`validate_reading` itself, so the verdict and its words are the same.
    """
    problems: dict[int, dict[str, str]] = {}
    latest = now + max_future_skew
    earliest = EARLIEST_PLAUSIBLE
    valid_ids: set[str] = set()  # device ids found valid in this call
    checks = _CHECK_BY_TEXT
    vital_kind, unit_type, utc = VitalKind, Unit, UTC
    for index, reading in enumerate(readings):
        device_id = reading.device_id
        measured = reading.measured_at
        plain = (
            type(device_id) is str and device_id in valid_ids
            and type(measured) is datetime and measured.tzinfo is utc
            and earliest <= measured <= latest
        )
        if plain:
            measurements = reading.measurements
            count = len(measurements)
            if count == 1 or (count == 2 and measurements[0].kind is not measurements[1].kind):
                for m in measurements:
                    kind = m.kind
                    if type(kind) is not vital_kind:
                        plain = False
                        break
                    text = kind._value_
                    if text == _SYSTOLIC or text == _DIASTOLIC:  # the pair's order: full check
                        plain = False
                        break
                    low, high, units = checks[text]
                    value = m.value
                    unit = m.original_unit
                    if not (
                        type(value) is float and low <= value <= high
                        and type(unit) is unit_type and unit._value_ in units
                    ):
                        plain = False
                        break
            else:
                plain = False
        if plain:
            level = reading.signal_quality
            if level is not None and not (
                type(level) is float and _PERCENT_LOW <= level <= _PERCENT_HIGH
            ):
                plain = False
            level = reading.battery_level
            if level is not None and not (
                type(level) is float and _PERCENT_LOW <= level <= _PERCENT_HIGH
            ):
                plain = False
            notes = reading.notes
            if notes is not None and len(notes) > MAX_NOTES_CHARS:
                plain = False
        if plain:
            continue
        errors = validate_reading(reading, now=now, max_future_skew=max_future_skew)
        if errors:
            problems[index] = errors
        elif type(device_id) is str:
            valid_ids.add(device_id)
    return problems
