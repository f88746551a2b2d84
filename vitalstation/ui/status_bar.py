"""The status bar: each input's health, readings per second, dropped and dead-lettered counts,
audio and simulator state.

The runtime's health is read once a second on a worker thread (an input's ``health()`` may
take a lock its network thread holds); the labels change only when their text does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.ui.tasks import BackgroundTasks

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime, RuntimeHealth

HEALTH_INTERVAL_MS = 1000
_STATE_MARK = {
    InputState.UP: "✓", InputState.STARTING: "…", InputState.DEGRADED: "!",
    InputState.DOWN: "✗", InputState.STOPPED: "■",
}
_NAMES = {"mqtt": "MQTT", "mqtt-broker": "Broker", "rest": "REST", "filedrop": "Inbox",
          "kinesis": "Kinesis", "dynamodb": "DynamoDB"}


def input_text(health: InputHealth) -> str:
    """``MQTT ✓`` or ``Kinesis ✗ down``: the mark and, unless up, the state in words."""
    name = _NAMES.get(health.name, health.name)
    mark = _STATE_MARK.get(health.state, "?")
    return f"{name} {mark}" if health.state is InputState.UP else \
        f"{name} {mark} {health.state.value}"


def _set_health(label: QLabel, state: str) -> None:
    if label.property("health") != state:
        label.setProperty("health", state)
        label.style().unpolish(label)
        label.style().polish(label)


class StationStatusBar(QStatusBar):
    """Status labels fed by :meth:`Runtime.health` (polled off the GUI thread)."""

    def __init__(self, runtime: Runtime, tasks: BackgroundTasks,
                 display_dropped: Callable[[], int] = lambda: 0,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runtime = runtime
        self._tasks = tasks
        self._display_dropped = display_dropped
        self._input_labels: dict[str, QLabel] = {}
        self._last: tuple[float, int] | None = None  # (monotonic, stored) of the last poll
        self._polling = False
        self.runtime_label = self._label("Starting the station…", "runtimeStatus")
        self.rate_label = self._label("", "rateStatus")
        self.dropped_label = self._label("", "droppedStatus")
        self.audio_label = self._label("", "audioStatus")
        self.simulator_label = self._label("", "simulatorStatus")
        self.simulator_label.hide()
        self.timer = QTimer(self)
        self.timer.setObjectName("status-health")
        self.timer.setInterval(HEALTH_INTERVAL_MS)
        self.timer.timeout.connect(self.poll)
        self.readings_per_s = 0.0

    def _label(self, text: str, name: str) -> QLabel:
        label = QLabel(text, self)
        label.setObjectName(name)
        self.addPermanentWidget(label)
        return label

    def start(self) -> None:
        """Begin polling (after the runtime started)."""
        self.runtime_label.hide()
        self.poll()
        self.timer.start()

    def stop(self) -> None:
        """Stop polling."""
        self.timer.stop()

    def show_runtime_problem(self, text: str) -> None:
        """The station could not start (or stopped): say it where the inputs would be."""
        self.runtime_label.setText(text)
        self.runtime_label.show()
        _set_health(self.runtime_label, "down")

    def set_audio(self, text: str, detail: str = "") -> None:
        """The audio state (from AlarmSound); ``detail`` says why it is unavailable."""
        self.audio_label.setText(text)
        self.audio_label.setToolTip(detail or text)
        _set_health(self.audio_label, "degraded" if detail else "ok")

    def set_simulator(self, text: str) -> None:
        """The simulator's state (empty: hidden)."""
        self.simulator_label.setText(text)
        self.simulator_label.setVisible(bool(text))

    def poll(self) -> None:
        """Read the runtime's health on a worker thread (one poll at a time)."""
        if self._polling:
            return
        self._polling = True
        self._tasks.submit(self._runtime.health, self._on_health, self._on_health_failed)

    def _on_health_failed(self, error: BaseException) -> None:
        self._polling = False
        self.show_runtime_problem(f"Station not running: {error}")

    def _on_health(self, health: RuntimeHealth) -> None:
        self._polling = False
        self.show_health(health, time.monotonic())

    def show_health(self, health: RuntimeHealth, at: float) -> None:
        """Update the labels from one health snapshot taken at monotonic time ``at``."""
        seen = set()
        for item in health.inputs:
            seen.add(item.name)
            label = self._input_labels.get(item.name)
            if label is None:
                label = QLabel(self)
                label.setObjectName(f"input-{item.name}")
                self.insertPermanentWidget(len(self._input_labels), label)
                self._input_labels[item.name] = label
            text = input_text(item)
            if label.text() != text:
                label.setText(text)
            tip = f"{item.name}: {item.state.value}" + (f" — {item.detail}" if item.detail
                                                          else "")
            tip += f"\nreceived {item.received}, rejected {item.rejected}"
            label.setToolTip(tip)
            _set_health(label, {InputState.DOWN: "down", InputState.DEGRADED: "degraded"}
                        .get(item.state, "ok"))
        for name in set(self._input_labels) - seen:
            self._input_labels.pop(name).deleteLater()
        stats = health.pipeline
        if self._last is not None and at > self._last[0]:
            self.readings_per_s = max(0.0, (stats.stored - self._last[1]) / (at - self._last[0]))
        self._last = (at, stats.stored)
        self.rate_label.setText(f"{self.readings_per_s:,.0f} readings/s · lag "
                                f"{stats.lag_ms:,.0f} ms")
        dropped = stats.busy_refusals + stats.activity_dropped + self._display_dropped()
        self.dropped_label.setText(f"dead letters {stats.dead_letters:,} · dropped {dropped:,}")
        self.dropped_label.setToolTip(
            f"dead letters (bad payloads kept for the admin): {stats.dead_letters}\n"
            f"refused, queue full: {stats.busy_refusals}\n"
            f"activity-log rows dropped: {stats.activity_dropped}\n"
            f"display updates shed (stored, not drawn): {self._display_dropped()}\n"
            f"failed writes: {stats.failed}"
        )
        _set_health(self.dropped_label, "degraded" if dropped or stats.failed else "ok")
