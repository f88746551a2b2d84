"""File drop: each payload written atomically into the station's inbox.

The station picks up ``*.json`` files; a file appears under that name only when it is complete:
it is written as ``<name>.json.tmp`` in the inbox itself (same file system), flushed to disk,
then renamed with ``os.replace`` to ``<DEVICE>_<YYYYMMDD_HHMMSS>_<seq>.json`` (UTC measurement
time of its first reading). A name already taken is never overwritten: the sequence number moves
on instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from simulator.transports.base import (
    ACKNOWLEDGED,
    Delivery,
    Outcome,
    Report,
    Transport,
    TransportError,
)
from simulator.wire import Message

__all__ = ["FileTransport"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _safe(device_id: str) -> str:
    """The device id as a file-name part (no separators, no spaces)."""
    return _UNSAFE.sub("_", device_id)[:64] or "device"


class FileTransport(Transport):
    """Writes every message as one file in ``inbox`` (created if missing)."""

    name = "file"

    def __init__(self, inbox: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.inbox = Path(inbox)
        self._fsync = fsync
        self._seq = 0
        self._report: Report | None = None

    @property
    def target(self) -> str:
        return str(self.inbox)

    def open(self, report: Report) -> None:
        try:
            self.inbox.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(
                f"cannot use the inbox {self.inbox}: {exc.strerror or exc}"
            ) from None
        if not os.access(self.inbox, os.W_OK):
            raise TransportError(f"cannot write into the inbox {self.inbox}")
        self._report = report

    def _final_path(self, message: Message) -> Path:
        stamp = message.measured_at.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
        while True:
            self._seq += 1
            path = self.inbox / f"{_safe(message.device_id)}_{stamp}_{self._seq:06d}.json"
            if not os.path.lexists(path):
                return path

    def write(self, message: Message) -> Path:
        """Write one message atomically; returns the final path. Raises OSError."""
        final = self._final_path(message)
        temp = final.with_name(final.name + ".tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(message.payload)
                handle.flush()
                if self._fsync:
                    os.fsync(handle.fileno())
            os.replace(temp, final)
        except OSError:
            temp.unlink(missing_ok=True)
            raise
        return final

    def send(self, messages: Sequence[Message]) -> None:
        assert self._report is not None, "open() first"
        for message in messages:
            try:
                self.write(message)
            except OSError as exc:
                detail = f"write failed: {exc.strerror or exc}"
                self._report(message, Outcome(Delivery.ERROR, detail))
            else:
                self._report(message, ACKNOWLEDGED)

    def close(self, timeout: float) -> None:
        self._report = None
