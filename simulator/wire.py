"""Encoding samples into the bytes a device sends: the two wire formats, and the bad payloads.

* ``bedside``: the seed publisher's one-vital message
  ``{"deviceid", "timestamp", "datatype", "value"}`` with its timestamp
  ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC, no zone), encoded by ``json.dumps`` as the seed did.
* ``inhealth``: the InHealth reading object (``device_id``, ISO-8601 ``timestamp`` with ``Z``,
  the vitals, their unit fields, ``signal_quality``, ``battery_level``), alone or as a batch
  ``{"device_id", "readings": [...]}``.

Everything here is a pure function of its arguments, so a seed and a start time give the same
bytes every time.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from simulator.models import Sample

__all__ = [
    "BEDSIDE_DATATYPE",
    "Message",
    "WireFormat",
    "bedside_timestamp",
    "encode_batch",
    "encode_single",
    "inhealth_timestamp",
]

# The seed publisher's datatype names, by InHealth field.
BEDSIDE_DATATYPE: dict[str, str] = {
    "heart_rate": "HeartRate",
    "oxygen_saturation": "SPO2",
    "temperature": "Temperature",
    "respiratory_rate": "RespiratoryRate",
    "blood_pressure_systolic": "SystolicBP",
    "blood_pressure_diastolic": "DiastolicBP",
    "glucose": "Glucose",
    "weight": "Weight",
}


# Unit fields, placed right after their vital as in the InHealth examples, and the seed's units.
_UNIT_FIELDS = {"temperature": "temperature_unit", "weight": "weight_unit"}
_SEED_UNITS = {"temperature_unit": "F", "weight_unit": "lbs"}


class WireFormat(enum.StrEnum):
    """Which payload format a message is in."""

    BEDSIDE = "bedside"
    INHEALTH = "inhealth"


@dataclass(frozen=True, slots=True)
class Message:
    """One payload ready for a transport, with what the statistics need to know about it.

    ``readings`` is how many readings it carries (a batch carries several). ``expect_refusal``
    says why the station must refuse it (a malformed payload, a skewed clock), ``unregistered``
    that its device is not registered. ``measured_at`` is its (first) reading's time and
    ``send_offset`` when it leaves the device, in simulated seconds from the start.
    """

    device_id: str
    bed: int
    payload: bytes
    measured_at: datetime
    readings: int = 1
    is_batch: bool = False
    expect_refusal: str | None = None
    unregistered: bool = False
    send_offset: float = 0.0


def bedside_timestamp(at: datetime) -> str:
    """The seed's ``str(datetime.now())`` shape, always with microseconds, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def inhealth_timestamp(at: datetime) -> str:
    """ISO-8601 in UTC with ``Z``, as in the InHealth examples (fraction only when non-zero)."""
    at = at.astimezone(UTC)
    if at.microsecond:
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bedside_object(sample: Sample, at: datetime) -> dict[str, object]:
    field, value = sample.vitals[0]
    obj: dict[str, object] = {
        "deviceid": sample.device_id,
        "timestamp": bedside_timestamp(at),
        "datatype": BEDSIDE_DATATYPE[field],
        "value": value,
    }
    if sample.battery_level is not None:
        obj["battery_level"] = sample.battery_level
    if sample.signal_quality is not None:
        obj["signal_quality"] = sample.signal_quality
    return obj


def _inhealth_object(sample: Sample, at: datetime, *, with_device: bool) -> dict[str, object]:
    obj: dict[str, object] = {}
    if with_device:
        obj["device_id"] = sample.device_id
    obj["timestamp"] = inhealth_timestamp(at)
    units = dict(sample.units)
    for field, value in sample.vitals:
        obj[field] = value
        unit_field = _UNIT_FIELDS.get(field)
        if unit_field is not None:
            # A bedside-monitor sample names no unit: the seed sends °F (and lbs).
            obj[unit_field] = units.get(unit_field, _SEED_UNITS[unit_field])
    if sample.signal_quality is not None:
        obj["signal_quality"] = sample.signal_quality
    if sample.battery_level is not None:
        obj["battery_level"] = sample.battery_level
    return obj


def _first_vital_key(obj: dict[str, object], fmt: WireFormat) -> str:
    if fmt is WireFormat.BEDSIDE:
        return "value"
    return next(key for key in obj if key not in ("device_id", "timestamp"))


def _malformed(sample: Sample, obj: dict[str, object], fmt: WireFormat) -> bytes:
    """``obj`` spoiled the way ``sample.defect`` says; every variant must be refused."""
    defect = sample.defect
    key = _first_vital_key(obj, fmt)
    if defect == "bad-json":
        text = json.dumps(obj)
        return text[: len(text) // 2].encode("utf-8")  # an unclosed object
    if defect == "string-number":
        obj[key] = str(obj[key])
    elif defect == "missing-timestamp":
        del obj["timestamp"]
    elif defect == "nan":
        obj[key] = float("nan")  # json.dumps writes NaN, which is not JSON
    elif defect == "wrong-type":
        obj[key] = [obj[key]]
    else:  # pragma: no cover - DEFECTS and this function change together
        raise ValueError(f"unknown defect {defect!r}")
    return json.dumps(obj).encode("utf-8")


def encode_single(sample: Sample, at: datetime, fmt: WireFormat) -> Message:
    """One sample as one payload in ``fmt`` (``at``: its timestamp, skew included)."""
    if fmt is WireFormat.BEDSIDE and len(sample.vitals) == 1:
        obj = _bedside_object(sample, at)
    else:
        fmt = WireFormat.INHEALTH
        obj = _inhealth_object(sample, at, with_device=True)
    if sample.defect is not None:
        payload = _malformed(sample, obj, fmt)
    else:
        payload = json.dumps(obj).encode("utf-8")
    return Message(
        device_id=sample.device_id,
        bed=sample.bed,
        payload=payload,
        measured_at=at,
        expect_refusal=sample.expect_refusal,
        unregistered=sample.unregistered,
        send_offset=sample.send_offset,
    )


def encode_batch(samples: Sequence[Sample], stamps: Sequence[datetime]) -> Message:
    """Samples of one device as an InHealth batch ``{"device_id", "readings": [...]}``."""
    first = samples[0]
    obj = {
        "device_id": first.device_id,
        "readings": [
            _inhealth_object(sample, at, with_device=False)
            for sample, at in zip(samples, stamps, strict=True)
        ],
    }
    return Message(
        device_id=first.device_id,
        bed=first.bed,
        payload=json.dumps(obj).encode("utf-8"),
        measured_at=stamps[0],
        readings=len(samples),
        is_batch=True,
        unregistered=first.unregistered,
        send_offset=max(sample.send_offset for sample in samples),
    )
