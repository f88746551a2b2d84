"""Settings > Alarms > Alarm limits: the chosen profile's limits, each vital's alarm delay and the
escalation timeouts, editable, showing the values in force.

A limit keeps the profile's structure (side, priority, whether its value itself alarms); only
its value changes, saved as an ``[alarms] limits`` item when it differs from the profile's own.
Every edit is checked at once by the same rules the station applies on saving and at start
(``alarms.limits.customised_profile``): a refused value is explained under its vital's row.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from vitalstation.alarms.engine import AlarmPolicy
from vitalstation.alarms.limits import (
    AlarmProfile,
    Direction,
    Limit,
    ProfileChangeError,
    customised_profile,
    delay_item,
    get_profile,
    limit_item,
)
from vitalstation.alarms.model import Priority
from vitalstation.config.settings import (
    MAX_ALARM_DELAY_S,
    AlarmsSettings,
    Settings,
)
from vitalstation.domain.vitals import CANONICAL_UNIT, PLAUSIBLE_RANGES, VitalKind
from vitalstation.ui.settings.forms import ERROR_STYLE, Key, SettingsForm

LIMITS_KEY: Key = ("alarms", "limits")
DELAYS_KEY: Key = ("alarms", "delays")
TIMEOUT_KEYS: tuple[Key, ...] = (
    ("alarms", "escalation_high_s"), ("alarms", "escalation_medium_s"),
    ("alarms", "escalation_low_s"),
)
# The grid's columns: the low side from the most severe inwards, then the high side outwards.
COLUMNS: tuple[tuple[Direction, Priority], ...] = (
    (Direction.LOW, Priority.HIGH), (Direction.LOW, Priority.MEDIUM),
    (Direction.LOW, Priority.LOW), (Direction.HIGH, Priority.LOW),
    (Direction.HIGH, Priority.MEDIUM), (Direction.HIGH, Priority.HIGH),
)
_DECIMALS = 2
_SHOWN_UNIT = {"mm[Hg]": "mmHg", "Cel": "°C"}
Slot = tuple[VitalKind, Direction, Priority]


def _sign(limit: Limit) -> str:
    if limit.direction is Direction.HIGH:
        return "≥ " if limit.inclusive else "> "
    return "≤ " if limit.inclusive else "< "


def limit_box_name(kind: VitalKind, direction: Direction, priority: Priority) -> str:
    """The object name of one limit's spin box (``limit_heart_rate_high_medium``)."""
    return f"limit_{kind.value}_{direction.value}_{priority.value}"


class AlarmLimitsForm(SettingsForm):
    """Escalation timeouts (plain fields), and a grid of limits and delays for the profile
    chosen in ``profile_box``; saved by the dialog's Save and apply like any form."""

    def __init__(self, settings: Settings, profile_box: QComboBox,
                 parent: QWidget | None = None) -> None:
        super().__init__(TIMEOUT_KEYS, settings, parent=parent)
        self.profile_box = profile_box
        self.grid_widget = QWidget(self)
        self.grid_widget.setObjectName("alarm_limits_grid")
        self.grid = QGridLayout(self.grid_widget)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.error = QLabel(self)
        self.error.setObjectName("alarm_limits_error")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        cap = AlarmPolicy().high_priority_delay_cap.total_seconds()
        intro = QLabel(
            "The profile's limits in canonical units (°C, mmHg, %, /min, mg/dL); change a value "
            f"to make it this station's default. Delays hold an alarm back (at most "
            f"{MAX_ALARM_DELAY_S} s; high priority never more than {cap:g} s). A patient's own "
            "limits are set from the bed view.", self)
        intro.setWordWrap(True)
        self.layout_.insertRow(0, intro)
        self.layout_.insertRow(1, self.grid_widget)
        self.layout_.insertRow(2, self.error)
        self.layout_.insertRow(3, self.note)
        self._boxes: dict[Slot, QDoubleSpinBox] = {}
        self._delays: dict[VitalKind, QSpinBox] = {}
        self._row_errors: dict[VitalKind, QLabel] = {}
        self._in_force: dict[Slot, float] = {}
        self._delay_in_force: dict[VitalKind, float] = {}
        self._base: AlarmProfile | None = None
        self._loaded_alarms = settings.alarms
        self._editable = True
        self._building = False
        self._last_edited: Slot | None = None
        profile_box.currentTextChanged.connect(self._profile_chosen)
        self.load(settings)

    # -- loading ---------------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        """Shows the limits, delays and timeouts in force."""
        super().load(settings)
        if not hasattr(self, "_boxes"):
            return  # SettingsForm.__init__ loads before the grid exists
        self._loaded_alarms = settings.alarms
        sources = [settings.source_of(*key) for key in (LIMITS_KEY, DELAYS_KEY)]
        env = [source[4:] for source in sources if source.startswith("env ")]
        self._editable = not env
        self.note.setText(f"Limits and delays are set by {', '.join(env)}; change them there."
                          if env else "")
        self.note.setVisible(bool(env))
        self._show(settings.alarms.profile, settings.alarms)

    def _profile_chosen(self, name: str) -> None:
        # Another profile starts from its own limits: the changes were made to the other one.
        same = name == self._loaded_alarms.profile
        self._show(name, self._loaded_alarms if same else AlarmsSettings(profile=name))

    def _show(self, name: str, alarms: AlarmsSettings) -> None:
        try:
            self._base = get_profile(name)
        except KeyError:
            self._base = None
        in_force = self._base
        if self._base is not None:
            try:
                in_force = customised_profile(self._base, _limit_changes(alarms),
                                              _delay_changes(alarms))
            except (ValueError, ProfileChangeError):
                in_force = self._base  # not in force then: the station refuses such a file
        self._building = True
        try:
            self._rebuild(in_force)
        finally:
            self._building = False
        self._check()

    def _rebuild(self, profile: AlarmProfile | None) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()
        self._boxes.clear()
        self._delays.clear()
        self._row_errors.clear()
        self._in_force.clear()
        self._delay_in_force.clear()
        headers = ["Vital"] + [f"{d.value} side, {p.value}" for d, p in COLUMNS] + ["Delay"]
        for column, text in enumerate(headers):
            self.grid.addWidget(QLabel(text, self.grid_widget), 0, column)
        if profile is None:
            return
        row = 1
        kinds = sorted(profile.limits, key=lambda k: list(VitalKind).index(k))
        for kind in kinds:
            limits = profile.limits[kind]
            unit = _SHOWN_UNIT.get(CANONICAL_UNIT[kind].value, CANONICAL_UNIT[kind].value)
            self.grid.addWidget(QLabel(f"{kind.value.replace('_', ' ')} ({unit})",
                                       self.grid_widget), row, 0)
            slots = {(lim.direction, lim.priority): lim for lim in limits.limits}
            plausible = PLAUSIBLE_RANGES[kind]
            for column, (direction, priority) in enumerate(COLUMNS, 1):
                limit = slots.get((direction, priority))
                if limit is None:
                    self.grid.addWidget(QLabel("—", self.grid_widget), row, column)
                    continue
                box = QDoubleSpinBox(self.grid_widget)
                box.setObjectName(limit_box_name(kind, direction, priority))
                box.setDecimals(_DECIMALS)
                # A profile may hold an unreachable limit (bedside-monitor: SpO2 > 110 %).
                box.setRange(min(plausible.low, limit.value), max(plausible.high, limit.value))
                box.setPrefix(_sign(limit))
                box.setValue(limit.value)
                box.setEnabled(self._editable)
                slot = (kind, direction, priority)
                box.valueChanged.connect(lambda _value, slot=slot: self._edited(slot))
                self._boxes[slot] = box
                self._in_force[kind, direction, priority] = limit.value
                self.grid.addWidget(box, row, column)
            delay = QSpinBox(self.grid_widget)
            delay.setObjectName(f"delay_{kind.value}")
            delay.setRange(0, MAX_ALARM_DELAY_S)
            delay.setSuffix(" s")
            delay.setValue(round(limits.delay.total_seconds()))
            delay.setEnabled(self._editable)
            delay.valueChanged.connect(lambda _value: self._edited(None))
            self._delays[kind] = delay
            self._delay_in_force[kind] = limits.delay.total_seconds()
            self.grid.addWidget(delay, row, len(COLUMNS) + 1)
            error = QLabel(self.grid_widget)
            error.setObjectName(f"limit_error_{kind.value}")
            error.setStyleSheet(ERROR_STYLE)
            error.setWordWrap(True)
            error.hide()
            self._row_errors[kind] = error
            self.grid.addWidget(error, row + 1, 1, 1, len(COLUMNS) + 1)
            row += 2

    # -- what the admin changed ------------------------------------------------------------

    def _values(self) -> tuple[dict[Slot, float], dict[VitalKind, float]]:
        """Each limit and delay shown; an untouched box keeps its exact value in force (the
        box rounds to two decimals)."""
        limits: dict[Slot, float] = {}
        for slot, box in self._boxes.items():
            exact = self._in_force[slot]
            limits[slot] = exact if box.value() == round(exact, _DECIMALS) else box.value()
        delays: dict[VitalKind, float] = {}
        for kind, box in self._delays.items():
            exact = self._delay_in_force[kind]
            delays[kind] = exact if box.value() == round(exact) else float(box.value())
        return limits, delays

    def items(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The ``[alarms] limits`` and ``delays`` items for the values shown: one per value
        that differs from the profile's own."""
        if self._base is None:
            return (), ()
        limits, delays = self._values()
        limit_items = []
        for (kind, direction, priority), value in limits.items():
            own = self._base.limits_for(kind)
            base = next((lim.value for lim in own.limits
                         if (lim.direction, lim.priority) == (direction, priority)), None)
            if base is None or value != base:
                limit_items.append(limit_item(kind, direction, priority, value))
        delay_items = []
        for kind, seconds in delays.items():
            own = self._base.limits_for(kind)
            if own is None or timedelta(seconds=seconds) != own.delay:
                delay_items.append(delay_item(kind, seconds))
        return tuple(limit_items), tuple(delay_items)

    def changes(self) -> dict[Key, Any]:
        """The timeouts changed; the limits and delays when they differ from those in force,
        or, when another profile is chosen, whenever the file holds changes to the old one."""
        changes = super().changes()
        if not self._editable:
            return changes
        limit_items, delay_items = self.items()
        loaded = self._loaded_alarms
        if self.profile_box.currentText() != loaded.profile:
            if limit_items != loaded.limits:
                changes[LIMITS_KEY] = limit_items
            if delay_items != loaded.delays:
                changes[DELAYS_KEY] = delay_items
            return changes
        shown = AlarmsSettings(limits=limit_items, delays=delay_items)
        try:
            old_limits, old_delays = loaded.limit_overrides(), loaded.delay_overrides()
        except ValueError:
            old_limits, old_delays = {}, {}
        if shown.limit_overrides() != old_limits:
            changes[LIMITS_KEY] = limit_items
        if shown.delay_overrides() != old_delays:
            changes[DELAYS_KEY] = delay_items
        return changes

    # -- checking and errors ---------------------------------------------------------------

    def _edited(self, slot: Slot | None) -> None:
        if not self._building:
            if slot is not None:
                self._last_edited = slot
            self._check()

    def _check(self) -> bool:
        """Checks the values shown as the station will; the reason goes under the vital."""
        for label in self._row_errors.values():
            label.hide()
        for box in [*self._boxes.values(), *self._delays.values()]:
            box.setStyleSheet("")
        if self._base is None:
            return True
        limit_items, delay_items = self.items()
        limits = _limit_changes(AlarmsSettings(limits=limit_items))
        if self._last_edited in limits:  # checked first: the reason names the value just typed
            limits = {self._last_edited: limits[self._last_edited], **limits}
        try:
            customised_profile(self._base, limits,
                               _delay_changes(AlarmsSettings(delays=delay_items)))
        except ProfileChangeError as exc:
            self._show_row_error(exc.vital, exc.reason, exc.item)
            return False
        return True

    def _show_row_error(self, kind: VitalKind, reason: str, item: str | None) -> None:
        label = self._row_errors.get(kind)
        if label is None:
            self.error.setText(reason)
            self.error.show()
            return
        label.setText(reason)
        label.show()
        if item:
            slot = item.partition("=")[0].strip().split(".")
            if len(slot) == 3:
                box = self._boxes.get((kind, Direction(slot[1]), Priority(slot[2])))
                if box is not None:
                    box.setStyleSheet("border: 1px solid #b00020;")

    def show_error(self, key: Key | str, text: str) -> bool:
        """A refused save: under the vital's row when the reason names one, else under the
        grid; timeouts under their own field."""
        if key not in (LIMITS_KEY, DELAYS_KEY):
            return super().show_error(key, text)
        vital = text.lstrip("'\"").split(".", 1)[0].split(" ", 1)[0]
        kind = next((k for k in self._row_errors if k.value == vital), None)
        if kind is not None:
            item, _, reason = text.partition(": ")
            self._show_row_error(kind, reason or text, item.strip("'\""))
        else:
            self.error.setText(text)
            self.error.show()
        return True

    def clear_errors(self) -> None:
        """Removes every error shown (and re-checks the values on screen)."""
        super().clear_errors()
        self.error.hide()
        self._check()

    def row_error(self, kind: VitalKind) -> str | None:
        """The reason shown under a vital's row, or None."""
        label = self._row_errors.get(kind)
        return label.text() if label is not None and not label.isHidden() else None


def _limit_changes(alarms: AlarmsSettings) -> dict[Slot, float]:
    return {(VitalKind(v), Direction(s), Priority(p)): value
            for (v, s, p), value in alarms.limit_overrides().items()}


def _delay_changes(alarms: AlarmsSettings) -> dict[VitalKind, timedelta]:
    return {VitalKind(v): timedelta(seconds=s) for v, s in alarms.delay_overrides().items()}
