"""Counting what was sent and what became of it, per device; thread-safe.

* sent: payloads handed to the transport;
* acknowledged: taken by the receiver (HTTP 2xx, PUBACK, put_records, file in the inbox);
* failed: not delivered, or refused although valid, or accepted by a receiver that judges
  content (REST) although the station must refuse it;
* expected refusals: payloads the station is expected to refuse (the malformed and clock-skew
  scenarios, and an unregistered device on REST, which has no key): refused by the receiver,
  or delivered for the station to refuse (MQTT, Kinesis and the inbox take any bytes).

A payload not yet settled (awaiting its PUBACK) is ``pending``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from simulator.transports.base import Delivery, Outcome, Transport
from simulator.wire import Message

__all__ = ["Counts", "SimulationStats", "StatsRecorder"]

_MAX_ERROR_KINDS = 20


@dataclass(frozen=True, slots=True)
class Counts:
    """Counters for one device or for the whole run (payloads; ``readings`` they carried)."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    expected_refusals: int = 0
    readings: int = 0

    @property
    def pending(self) -> int:
        """Sent, not yet settled."""
        return self.sent - self.acknowledged - self.failed - self.expected_refusals


@dataclass(frozen=True, slots=True)
class SimulationStats:
    """A snapshot of a run."""

    transport: str
    target: str
    totals: Counts
    devices: dict[str, Counts]
    errors: tuple[tuple[str, int], ...]  # (what went wrong, how often), most frequent first
    running: bool = False
    simulated_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    fatal: str | None = None  # why the run could not go on (target unreachable, ...)
    seed: int | None = None
    details: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing failed, nothing is left unsettled and the run was not aborted."""
        return self.fatal is None and self.totals.failed == 0 and self.totals.pending == 0

    def as_dict(self) -> dict[str, object]:
        """For ``--json``."""
        def counts(c: Counts) -> dict[str, int]:
            return {
                "sent": c.sent, "acknowledged": c.acknowledged, "failed": c.failed,
                "expected_refusals": c.expected_refusals, "pending": c.pending,
                "readings": c.readings,
            }
        return {
            "transport": self.transport,
            "target": self.target,
            "seed": self.seed,
            **counts(self.totals),
            "simulated_seconds": round(self.simulated_seconds, 3),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "fatal": self.fatal,
            "errors": [{"error": text, "count": n} for text, n in self.errors],
            "devices": {device: counts(c) for device, c in sorted(self.devices.items())},
        }


class _Mutable:
    __slots__ = ("acknowledged", "expected_refusals", "failed", "readings", "sent")

    def __init__(self) -> None:
        self.sent = self.acknowledged = self.failed = self.expected_refusals = self.readings = 0

    def freeze(self) -> Counts:
        return Counts(self.sent, self.acknowledged, self.failed, self.expected_refusals,
                      self.readings)


class StatsRecorder:
    """Collects counts as messages are sent and settled (from any thread)."""

    def __init__(self, transport: Transport) -> None:
        self.transport_name = transport.name
        self.target = transport.target
        self._judges = transport.judges_content
        self._refuses_unregistered = transport.refuses_unregistered
        self._lock = threading.Lock()
        self._total = _Mutable()
        self._devices: dict[str, _Mutable] = {}
        self._errors: Counter[str] = Counter()

    def _expected_refusal(self, message: Message) -> str | None:
        if message.expect_refusal is not None:
            return message.expect_refusal
        if message.unregistered and self._refuses_unregistered:
            return "unregistered device (no key)"
        return None

    def sent(self, messages: list[Message]) -> None:
        """Count ``messages`` as handed to the transport."""
        with self._lock:
            for message in messages:
                device = self._devices.get(message.device_id)
                if device is None:
                    device = self._devices[message.device_id] = _Mutable()
                for c in (self._total, device):
                    c.sent += 1
                    c.readings += message.readings

    def settle(self, message: Message, outcome: Outcome) -> None:
        """Record what became of ``message`` (the transports' ``report``)."""
        expected = self._expected_refusal(message)
        error: str | None = None
        if outcome.delivery is Delivery.ACKNOWLEDGED:
            if expected is None:
                kind = "acknowledged"
            elif self._judges:
                kind = "failed"
                error = f"accepted although the station must refuse it ({expected})"
            else:
                kind = "expected_refusals"
        elif outcome.delivery is Delivery.REFUSED and expected is not None:
            kind = "expected_refusals"
        else:
            kind = "failed"
            error = outcome.detail or outcome.delivery.value
        with self._lock:
            device = self._devices.setdefault(message.device_id, _Mutable())
            for c in (self._total, device):
                setattr(c, kind, getattr(c, kind) + 1)
            if error is not None:
                self._errors[error] += 1

    def snapshot(self, **kwargs) -> SimulationStats:
        """The counts now, with the run's other facts in ``kwargs``."""
        with self._lock:
            totals = self._total.freeze()
            devices = {d: c.freeze() for d, c in self._devices.items()}
            errors = tuple(self._errors.most_common(_MAX_ERROR_KINDS))
        return SimulationStats(
            transport=self.transport_name, target=self.target, totals=totals,
            devices=devices, errors=errors, **kwargs,
        )
