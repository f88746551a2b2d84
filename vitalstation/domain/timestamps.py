"""Device timestamps: parsing the clock a device sends, and bounding it.

A reading's time is the time the device measured, never the time we received it: the seed
silently replaced missing or unparsable timestamps with server "now", which files a back-filled
reading at the wrong moment. Here a timestamp is parsed strictly or refused with a reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from vitalstation.domain.errors import describe_json_type, quote

# How far ahead of our clock a device clock may run before its readings are refused.
DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)
# A device clock earlier than this is unset or broken (1970 after a battery swap, 2000 resets).
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)
# Longest timestamp text we try to parse; ISO-8601 with nanoseconds and offset is ~35 chars.
MAX_TIMESTAMP_CHARS = 64

TIMESTAMP_FORMAT_HINT = (
    'an ISO-8601 string such as "2025-11-17T10:30:00Z", "2025-11-17T10:30:00+01:00" '
    'or "2025-11-17 10:30:00"'
)

_ZERO = timedelta(0)


def _has_iso_shape(text: str) -> bool:
    """True when ``text`` starts ``YYYY-MM-DD[T ]HH:MM`` in ASCII digits.

    ``datetime.fromisoformat`` (3.11) also takes week dates, basic format and a bare date; a
    device sending those is misconfigured, and a bare date has no time of measurement.
    """
    if len(text) < 16 or not text.isascii():
        return False
    if text[4] != "-" or text[7] != "-" or text[10] not in "Tt " or text[13] != ":":
        return False
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16]
    return digits.isdigit()


def parse_device_timestamp(value: object, *, naive_zone: tzinfo = UTC) -> datetime:
    """Parse a device's ISO-8601 timestamp into an aware UTC datetime.

    A timestamp without offset is read in ``naive_zone`` (the zone the device's clock is set
    to; in a DST fold the earlier instant is taken). Raises ``ValueError`` with a reason fit for
    an error map when ``value`` is not such a string. Epoch numbers are refused: seconds and
    milliseconds are indistinguishable, and guessing files a reading in the wrong decade.
    """
    if not isinstance(value, str):
        kind = describe_json_type(value)
        suffix = " (epoch numbers are not accepted)" if kind == "a number" else ""
        raise ValueError(f"must be {TIMESTAMP_FORMAT_HINT}, not {kind}{suffix}")
    text = value.strip()
    if len(text) > MAX_TIMESTAMP_CHARS or not _has_iso_shape(text):
        raise ValueError(f"{quote(value)} is not {TIMESTAMP_FORMAT_HINT}")
    if text[-1] == "z":
        text = text[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{quote(value)} is not a valid date and time ({exc})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_zone)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 shifted by an offset leaves datetime's range: no device meant that.
        raise ValueError(f"{quote(value)} is outside any plausible time") from None


def check_measured_at(
    measured_at: datetime, *, now: datetime, max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
) -> str | None:
    """Return why ``measured_at`` cannot be a real measurement time, or None when it can.

    Cheap on purpose: the pipeline runs it on every reading.
    """
    if measured_at.tzinfo is None or measured_at.utcoffset() != _ZERO:
        return "must be a timezone-aware UTC time"
    if measured_at > now + max_future_skew:
        return (
            f"{measured_at.isoformat()} is in the future (device clock ahead?); "
            f"now is {now.astimezone(UTC).isoformat()}"
        )
    if measured_at < EARLIEST_PLAUSIBLE:
        return f"{measured_at.isoformat()} is before 2000-01-01 (device clock not set?)"
    return None


def require_aware(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC; a naive datetime here is a programming error, not bad input."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)
