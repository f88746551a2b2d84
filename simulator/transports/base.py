"""What every transport is to the simulation: open, send messages, report outcomes, close."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simulator.wire import Message, WireFormat

__all__ = ["DEFAULT_TOPIC_PREFIX", "Delivery", "Outcome", "Report", "Transport", "TransportError"]

# Devices publish on <prefix>/<device id>; the station subscribes to <prefix>/# by default.
DEFAULT_TOPIC_PREFIX = "healthcare/monitors"


class TransportError(Exception):
    """The transport cannot work at all (target unreachable, stream missing, bad credentials)."""


class Delivery(enum.StrEnum):
    """What became of one message."""

    ACKNOWLEDGED = "acknowledged"  # the receiver took it (HTTP 2xx, PUBACK, put_records, file)
    REFUSED = "refused"  # the receiver answered no (HTTP 4xx, MQTT 5 PUBACK error)
    ERROR = "error"  # it could not be delivered (connection, timeout, server error)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A message's fate, with the receiver's or the system's words when it was not taken."""

    delivery: Delivery
    detail: str = ""


ACKNOWLEDGED = Outcome(Delivery.ACKNOWLEDGED)

Report = Callable[[Message, Outcome], None]
"""Called once per message, from any thread, when its outcome is known."""


class Transport(ABC):
    """A way to deliver payloads to the station.

    ``open`` connects (raising ``TransportError`` with the reason when that is impossible),
    ``send`` hands over messages in order and reports each outcome through ``report`` (at once
    or, for MQTT, when the PUBACK arrives), ``close`` waits up to ``timeout`` seconds for
    outstanding acknowledgements and reports the rest as errors. All three are called from one
    thread (the simulation's); ``report`` may be called from another.
    """

    name: str = ""
    # True when the receiver judges each payload (REST answers 400): a payload the station must
    # refuse is then a failure if it is accepted. MQTT, Kinesis and the inbox take any bytes.
    judges_content: bool = False
    # True when an unregistered device cannot even be sent for (REST needs a device key).
    refuses_unregistered: bool = False
    # The format this transport forces (REST speaks InHealth only); None: the model's.
    wire_format: WireFormat | None = None

    @property
    @abstractmethod
    def target(self) -> str:
        """Where messages go, for the summary (no secrets)."""

    @abstractmethod
    def open(self, report: Report) -> None:
        """Connect; raise ``TransportError`` saying why when that is impossible."""

    @abstractmethod
    def send(self, messages: Sequence[Message]) -> None:
        """Deliver ``messages`` in order; every one gets exactly one ``report``."""

    @abstractmethod
    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for outstanding acknowledgements, then disconnect."""
