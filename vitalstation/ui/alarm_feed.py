"""Alarm transitions pushed to the GUI thread at once (DESIGN.md's thread model).

The alarm service calls its listeners on the pipeline, tick or operator thread. A Qt signal
emitted there and received by an object living on the GUI thread is delivered as a queued
event, so the widgets see each transition on their own thread, in order, without waiting for
the frame tick. Alarms never wait for the bulk data path.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot

from vitalstation.alarms import Alarm, AlarmTransition

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime


class AlarmFeed(QObject):
    """Alarm transitions from any thread, re-emitted on the GUI thread (queued connection).

    Create it on the GUI thread. Its listener stays registered with the runtime for the
    runtime's life (the service has no way to remove one); after :meth:`close` (or once this
    object is deleted) the listener does nothing.
    """

    transition = Signal(object)
    """One :class:`AlarmTransition`, emitted on the GUI thread."""

    _received = Signal(object)  # emitted on the engine's threads; queued to _on_received

    def __init__(self, runtime: Runtime, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runtime = runtime
        self._closed = threading.Event()
        self._received.connect(self._on_received, Qt.ConnectionType.QueuedConnection)
        self.destroyed.connect(self._closed.set)
        runtime.add_alarm_listener(self._listen)

    def active(self) -> list[Alarm]:
        """The engine's open alarms now, highest priority first (no SQL)."""
        return self._runtime.alarms.active_alarms()

    def close(self) -> None:
        """Stop forwarding transitions (the window is closing)."""
        self._closed.set()

    def _listen(self, transition: AlarmTransition) -> None:
        """The alarm service's listener: runs on the pipeline, tick or operator thread."""
        if self._closed.is_set():
            return
        try:
            self._received.emit(transition)
        except RuntimeError:
            # The C++ object went away between the check and the emit (window closed).
            self._closed.set()

    @Slot(object)
    def _on_received(self, transition: AlarmTransition) -> None:
        if not self._closed.is_set():
            self.transition.emit(transition)
