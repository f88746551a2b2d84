"""What every input is to the runtime: something that starts, stops and reports its health."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class InputState(enum.StrEnum):
    """An input's state as the status bar and ``serve`` show it."""

    STARTING = "starting"
    UP = "up"
    DEGRADED = "degraded"  # running, but something is wrong (e.g. reconnecting)
    DOWN = "down"  # not receiving: the detail says why
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class InputHealth:
    """A snapshot of one input's health."""

    name: str
    state: InputState
    detail: str = ""
    since: datetime | None = None
    received: int = 0
    rejected: int = 0


class Input(Protocol):
    """An input of readings. ``start`` must return promptly: the work runs on its own thread."""

    name: str

    def start(self) -> None:
        """Begin receiving (raise with a clear message if the input cannot start at all)."""
        ...

    def stop(self, timeout: float) -> None:
        """Stop receiving; readings already submitted are left to the pipeline to finish."""
        ...

    def health(self) -> InputHealth:
        """Current state, for the status bar and logs."""
        ...
