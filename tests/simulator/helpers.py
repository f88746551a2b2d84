"""Test helpers: the station's parsers applied to messages, NEWS2, a recording transport."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from simulator.transports.base import ACKNOWLEDGED, Report, Transport
from simulator.wire import Message
from vitalstation.domain.payloads import BatchParse, decode_json, parse_payload, validate_reading
from vitalstation.domain.readings import InputKind

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def parse(message: Message | bytes, now: datetime, input: InputKind = InputKind.MQTT) -> BatchParse:
    """Parse a payload as the station's MQTT/Kinesis/file inputs do (``PayloadError`` on body)."""
    payload = message.payload if isinstance(message, Message) else message
    return parse_payload(decode_json(payload), input=input, received_at=now)


def assert_valid(message: Message, now: datetime) -> None:
    """The payload parses into exactly its readings, each passing validate_reading."""
    result = parse(message, now)
    assert result.errors == {}, (message.payload, result.errors)
    assert len(result.readings) == message.readings
    for _, reading in result.readings:
        assert validate_reading(reading, now=now) == {}
        assert reading.device_id == message.device_id


# --- NEWS2 (RCP 2017, Chart 1; reference/clinical.md): SpO2 scale 1, on air, alert ----------


def _rr(v: float) -> int:
    return 3 if v <= 8 else 1 if v <= 11 else 0 if v <= 20 else 2 if v <= 24 else 3


def _spo2(v: float) -> int:
    return 3 if v <= 91 else 2 if v <= 93 else 1 if v <= 95 else 0


def _sbp(v: float) -> int:
    return 3 if v <= 90 else 2 if v <= 100 else 1 if v <= 110 else 0 if v <= 219 else 3


def _pulse(v: float) -> int:
    if v <= 40:
        return 3
    return 1 if v <= 50 else 0 if v <= 90 else 1 if v <= 110 else 2 if v <= 130 else 3


def _temp(celsius: float) -> int:
    t = round(celsius, 1)  # rounded to 0.1 °C before banding
    return 3 if t <= 35.0 else 1 if t <= 36.0 else 0 if t <= 38.0 else 1 if t <= 39.0 else 2


def news2(*, rr: float, spo2: float, sbp: float, hr: float, temp_c: float,
          oxygen: bool = False, alert: bool = True) -> int:
    """The aggregate NEWS2 score."""
    return (_rr(rr) + _spo2(spo2) + (2 if oxygen else 0) + _sbp(sbp) + _pulse(hr)
            + (0 if alert else 3) + _temp(temp_c))


# --- a transport that only records ------------------------------------------------------------


class RecordingTransport(Transport):
    """Acknowledges everything at once and keeps the messages."""

    name = "recording"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._report: Report | None = None
        self.closed = threading.Event()

    @property
    def target(self) -> str:
        return "memory"

    def open(self, report: Report) -> None:
        self._report = report

    def send(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.messages.append(message)
            self._report(message, ACKNOWLEDGED)

    def close(self, timeout: float) -> None:
        self.closed.set()
