"""Shared by the app tests: a device's REST POST as the seed's clients send it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime


def post_heart_rate(url: str, key: str, device_id: str, heart_rate: float) -> int:
    """POST one reading (heart rate, timestamped now) to ``url``'s receiver; the HTTP status."""
    body = json.dumps({"device_id": device_id, "heart_rate": heart_rate,
                       "timestamp": datetime.now(UTC).isoformat()}).encode()
    request = urllib.request.Request(
        f"{url}/api/iot/vitals/", data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
