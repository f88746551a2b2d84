"""The alarm banner: the highest-priority open alarm in words, in its IEC 60601-1-8 colour,
flashing at its priority's rate, with the count of the others, paging, and the acknowledge and
audio-pause buttons (with the pause's countdown).

Flashing (clinical.md): HIGH 2 Hz and MEDIUM 0.6 Hz, both 50 % on (IEC: 1.4–2.8 Hz and
0.4–0.8 Hz, 20–60 % on); LOW steady. An acknowledged alarm stays shown, steady. Colour is never
the only cue: the text starts with ``***``, ``**`` or ``*``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from vitalstation.alarms import Alarm, AlarmKind, AlarmState, Priority
from vitalstation.ui.alarm_state import ActiveAlarms
from vitalstation.ui.bed_tile import NUMERICS, ElidedLabel
from vitalstation.ui.theme import ThemeColors

FLASH_HZ = {Priority.HIGH: 2.0, Priority.MEDIUM: 0.6}
FLASH_DUTY = 0.5
COUNTDOWN_INTERVAL_MS = 1000
_ABBREVIATION = {v: n.caption for n in NUMERICS for v in n.vitals}


def flash_half_period_ms(priority: Priority) -> int | None:
    """How long the banner stays on (and off) when flashing; None: steady."""
    hz = FLASH_HZ.get(priority)
    return None if hz is None else round(1000 / hz * FLASH_DUTY)


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def alarm_text(alarm: Alarm) -> str:
    """``*** Bed 4 · HR 152 > 150``: priority marker, where, what."""
    where = f"Bed {alarm.bed_label}" if alarm.bed_label else (alarm.device_id or "Station")
    what = alarm.message
    if alarm.kind is AlarmKind.LIMIT and alarm.vital is not None and alarm.value is not None \
            and alarm.limit_value is not None:
        sign = ">" if alarm.condition.endswith(".high") else "<"
        name = _ABBREVIATION.get(alarm.vital, alarm.vital.value)
        what = f"{name} {_number(alarm.value)} {sign} {_number(alarm.limit_value)}"
    elif alarm.kind is AlarmKind.NEWS2 and alarm.value is not None:
        what = f"NEWS2 {_number(alarm.value)}"
    if alarm.state is AlarmState.ACKNOWLEDGED:
        what += " (acknowledged)"
    elif alarm.latched:
        what += " (ended; acknowledge)"
    return f"{alarm.priority.marker} {where} · {what}"


class AlarmBanner(QFrame):
    """The banner above the grid (GUI thread).

    ``acknowledge_requested(alarm)`` and ``audio_pause_requested()`` go to the main window,
    which calls the alarm service off the GUI thread. ``flash_timer`` is public so that a test
    can measure the flashing; ``flash_changed(bool)`` is emitted on every on/off.
    """

    acknowledge_requested = Signal(object)
    audio_pause_requested = Signal()
    flash_changed = Signal(bool)

    def __init__(self, alarms: ActiveAlarms, colors: ThemeColors, clock: Callable[[], datetime],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alarmBanner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._alarms = alarms
        self._colors = colors
        self._clock = clock
        self._page = 0
        self._shown: Alarm | None = None
        self._lit = True
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 4)
        self.text = ElidedLabel(self)  # a long message must not widen the window
        self.text.setObjectName("bannerText")
        self.others = QLabel(self)
        self.others.setObjectName("bannerOthers")
        self.previous_button = QPushButton("‹", self)
        self.next_button = QPushButton("›", self)
        for button, tip in ((self.previous_button, "Previous alarm (Page Up)"),
                            (self.next_button, "Next alarm (Page Down)")):
            button.setObjectName("bannerPage")
            button.setToolTip(tip)
            button.setFixedWidth(40)
        self.pause_label = QLabel(self)
        self.pause_label.setObjectName("bannerPause")
        self.acknowledge_button = QPushButton("Acknowledge", self)
        self.acknowledge_button.setToolTip("Acknowledge the alarm shown (F8)")
        self.pause_button = QPushButton("Audio pause", self)
        self.pause_button.setToolTip("Pause every alarm's sound for 2 minutes (F9)")
        for button in (self.acknowledge_button, self.pause_button):
            button.setObjectName("bannerButton")
        layout.addWidget(self.text, 1)
        layout.addWidget(self.others)
        layout.addWidget(self.previous_button)
        layout.addWidget(self.next_button)
        layout.addWidget(self.pause_label)
        layout.addWidget(self.acknowledge_button)
        layout.addWidget(self.pause_button)

        self.flash_timer = QTimer(self)
        self.flash_timer.setObjectName("banner-flash")
        self.flash_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.flash_timer.timeout.connect(self._on_flash)
        self.countdown_timer = QTimer(self)
        self.countdown_timer.setObjectName("banner-countdown")
        self.countdown_timer.setInterval(COUNTDOWN_INTERVAL_MS)
        self.countdown_timer.timeout.connect(self._update_pause)

        self.previous_button.clicked.connect(lambda: self.page(-1))
        self.next_button.clicked.connect(lambda: self.page(1))
        self.acknowledge_button.clicked.connect(self.acknowledge_shown)
        self.pause_button.clicked.connect(self.audio_pause_requested)
        alarms.changed.connect(self.refresh)
        self.refresh()

    # -- what is shown ---------------------------------------------------------------------

    @property
    def shown(self) -> Alarm | None:
        """The alarm the banner shows now."""
        return self._shown

    def refresh(self) -> None:
        """Show the alarm at the current page (the highest priority unless paged)."""
        alarms = self._alarms.alarms()
        previous = self._shown
        if alarms and previous is not None and alarms[0].priority > previous.priority:
            self._page = 0  # a higher priority always takes the banner
        self._page = min(self._page, max(0, len(alarms) - 1))
        self._shown = alarms[self._page] if alarms else None
        alarm = self._shown
        if alarm is None:
            self.text.setText("No active alarms")
            self.others.setText("")
        else:
            self.text.setText(alarm_text(alarm))
            self.others.setText(f"+{len(alarms) - 1} more" if len(alarms) > 1 else "")
        self.previous_button.setVisible(len(alarms) > 1)
        self.next_button.setVisible(len(alarms) > 1)
        self.acknowledge_button.setEnabled(
            alarm is not None and alarm.state is not AlarmState.ACKNOWLEDGED
        )
        self.pause_button.setEnabled(any(a.audible for a in alarms))
        self._set_flashing(alarm)
        self._update_pause()

    def page(self, step: int) -> None:
        """Show the next (1) or previous (-1) open alarm."""
        count = len(self._alarms.alarms())
        if count:
            self._page = (self._page + step) % count
            self.refresh()

    def acknowledge_shown(self) -> None:
        """Ask for the shown alarm to be acknowledged."""
        if self._shown is not None and self._shown.state is not AlarmState.ACKNOWLEDGED:
            self.acknowledge_requested.emit(self._shown)

    def set_colors(self, colors: ThemeColors) -> None:
        """Theme change."""
        self._colors = colors
        self._apply_look()

    # -- flashing --------------------------------------------------------------------------

    def _set_flashing(self, alarm: Alarm | None) -> None:
        half = None
        if alarm is not None and alarm.state is not AlarmState.ACKNOWLEDGED:
            half = flash_half_period_ms(alarm.priority)
        if half is None:
            self.flash_timer.stop()
            self._lit = True
        elif self.flash_timer.interval() != half or not self.flash_timer.isActive():
            self.flash_timer.start(half)
        self._apply_look()

    def _on_flash(self) -> None:
        self._lit = not self._lit
        self._apply_look()
        self.flash_changed.emit(self._lit)

    @property
    def lit(self) -> bool:
        """True while the banner shows its alarm colour (off: the flash's dark half)."""
        return self._lit

    def _apply_look(self) -> None:
        c = self._colors
        alarm = self._shown
        if alarm is None:
            background, foreground, border = c.surface, c.ok, c.surface_border
        elif self._lit:
            background = c.alarm_color(alarm.priority)
            foreground = c.on_alarm_color(alarm.priority)
            border = background
        else:
            background, foreground = c.surface, c.text
            border = c.alarm_color(alarm.priority)
        self.setStyleSheet(
            f"QFrame#alarmBanner {{ background: {background}; border: 3px solid {border}; }}"
            f"QFrame#alarmBanner QLabel {{ color: {foreground}; }}"
        )

    # -- audio pause countdown --------------------------------------------------------------

    def _update_pause(self) -> None:
        until = max((a.audio_paused_until for a in self._alarms.alarms()
                     if a.state is AlarmState.AUDIO_PAUSED and a.audio_paused_until),
                    default=None)
        remaining = 0.0 if until is None else (until - self._clock()).total_seconds()
        if remaining <= 0:
            self.pause_label.setText("")
            self.countdown_timer.stop()
            return
        minutes, seconds = divmod(int(remaining + 0.999), 60)
        self.pause_label.setText(f"Audio paused {minutes}:{seconds:02d}")
        if not self.countdown_timer.isActive():
            self.countdown_timer.start()
