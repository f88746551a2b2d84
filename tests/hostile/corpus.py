"""A corpus of bad payloads, sent to the station as MQTT messages and as inbox files.

Every entry must be refused (a dead letter, a quarantined file) with a reason, and must not
stop the input: a good reading sent after the whole corpus is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

TEN_MB = 10 * 1024 * 1024 + 100  # just over the file drop's 10 MiB (and MQTT's 256 KiB) limit


def _bedside(device: str, **fields: object) -> bytes:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    message: dict[str, object] = {"deviceid": device, "timestamp": stamp,
                                  "datatype": "HeartRate", "value": 80}
    message.update(fields)
    return json.dumps(message).encode()


def _inhealth(device: str, **fields: object) -> bytes:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    reading: dict[str, object] = {"device_id": device, "timestamp": stamp, "heart_rate": 80}
    reading.update(fields)
    return json.dumps(reading).encode()


def bad_payloads(device: str) -> dict[str, bytes]:
    """Name → payload; each one is wrong in one way."""
    wall_clock_east = datetime.now(UTC) + timedelta(hours=14)  # local time of UTC+14 ...
    nested = 100_000
    return {
        "binary": bytes(range(256)) * 16,
        "ten-megabytes": b'{"deviceid": "' + device.encode() + b'", "pad": "'
        + b"x" * TEN_MB + b'"}',
        "deeply-nested-arrays": b"[" * nested + b"]" * nested,
        "deeply-nested-objects": b'{"a":' * nested + b"1" + b"}" * nested,
        "nan": _bedside(device).replace(b'"value": 80', b'"value": NaN'),
        "infinity": _bedside(device).replace(b'"value": 80', b'"value": Infinity'),
        "huge-number": _bedside(device).replace(b'"value": 80', b'"value": 1e400'),
        "value-as-string": _bedside(device, value="85"),
        "value-as-list": _bedside(device, value=[85]),
        "value-as-bool": _bedside(device, value=True),
        "device-as-number": _bedside(device, deviceid=42),
        "timestamp-as-number": _bedside(device, timestamp=1763375400),
        "unknown-vital-bedside": _bedside(device, datatype="SerumCholesterol"),
        "unknown-vital-inhealth": _inhealth(device, heart_rate=None, glucose_mmol=5.2),
        # ... labelled as UTC: 14 hours in the future.
        "wrong-zone": _bedside(device, timestamp=wall_clock_east.strftime("%Y-%m-%dT%H:%M:%SZ")),
        "impossible-zone": _bedside(device, timestamp="2025-11-08T10:23:45+25:00"),
        "invalid-utf8": b'{"deviceid": "\xff\xfe", "datatype": "HeartRate", "value": 80}',
        "empty": b"",
        "not-an-object": b"[1, 2, 3]",
        "null": b"null",
        "truncated": _bedside(device)[:-7],
        "heart-rate-out-of-range": _bedside(device, value=-40),
    }
