"""The open alarms as the window knows them: loaded once off the GUI thread, then kept up to
date from the pushed transitions, so that no widget ever waits on the alarm service's lock
(which is held while transitions are stored)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from vitalstation.alarms import Alarm, AlarmState, AlarmTransition, Priority
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.tasks import BackgroundTasks


def alarm_order(alarm: Alarm) -> tuple:
    """Banner order: what still needs someone first (unacknowledged before acknowledged), then
    the highest priority, then the oldest."""
    return (
        alarm.state is AlarmState.ACKNOWLEDGED,
        -alarm.priority.rank,
        alarm.raised_at,
        alarm.key,
    )


class ActiveAlarms(QObject):
    """Open alarms by key; ``changed`` once per event-loop turn however many transitions came.

    Lives on the GUI thread. The first snapshot comes from :meth:`AlarmFeed.active` on a worker
    thread; a transition that arrives before it wins over the snapshot's older view of that
    alarm.
    """

    changed = Signal()

    def __init__(self, feed: AlarmFeed, tasks: BackgroundTasks,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._feed = feed
        self._tasks = tasks
        self._alarms: dict[str, Alarm] = {}
        self._touched: set[str] | None = None  # keys seen while the snapshot loads
        self.loaded = False
        self._notify = QTimer(self)
        self._notify.setSingleShot(True)
        self._notify.setInterval(0)
        self._notify.timeout.connect(self.changed)
        feed.transition.connect(self._on_transition)

    def load(self) -> None:
        """Fetch the engine's open alarms off the GUI thread."""
        self._touched = set()
        self._tasks.submit(self._feed.active, self._on_loaded)

    def alarms(self) -> list[Alarm]:
        """Every open alarm in banner order."""
        return sorted(self._alarms.values(), key=alarm_order)

    def for_bed(self, bed_label: str) -> list[Alarm]:
        """The open alarms of one bed, in banner order."""
        return sorted((a for a in self._alarms.values() if a.bed_label == bed_label),
                      key=alarm_order)

    def get(self, key: str) -> Alarm | None:
        """One open alarm by its key."""
        return self._alarms.get(key)

    def highest(self) -> Priority | None:
        """The highest priority among the unacknowledged open alarms."""
        levels = [a.priority for a in self._alarms.values()
                  if a.state is not AlarmState.ACKNOWLEDGED]
        return max(levels) if levels else None

    def _on_loaded(self, alarms: list[Alarm]) -> None:
        touched = self._touched or set()
        for alarm in alarms:
            if alarm.key not in touched and alarm.is_open:
                self._alarms[alarm.key] = alarm
        self._touched = None
        self.loaded = True
        self._notify.start()

    def _on_transition(self, transition: AlarmTransition) -> None:
        alarm = transition.alarm
        if self._touched is not None:
            self._touched.add(alarm.key)
        if alarm.is_open:
            self._alarms[alarm.key] = alarm
        else:
            self._alarms.pop(alarm.key, None)
        if not self._notify.isActive():
            self._notify.start()
