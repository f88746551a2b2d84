"""The bed detail's tabs other than the trends: readings table, alarm and escalation trail,
the patient's limits (editable with a reason), and the manual observations form.

Each panel only shows; the window loads its data off the GUI thread and hands it over.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QDoubleValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from vitalstation.alarms import Direction, Limit, LimitOverride, VitalLimits
from vitalstation.storage.history import RecordRow, TrailEvent
from vitalstation.ui.detail_common import (
    alarm_qcolor,
    details_text,
    event_text,
    format_value,
    local_time,
    make_table,
    on_alarm_qcolor,
    priority_text,
    set_row,
    unit_text,
    vital_name,
)
from vitalstation.ui.theme import ThemeColors

# The vitals whose limits a clinician may change here, in the order a nurse reads them.
LIMIT_VITALS = (
    "heart_rate", "oxygen_saturation", "respiratory_rate", "blood_pressure_systolic",
    "blood_pressure_diastolic", "temperature", "glucose",
)
LIMIT_UNITS = {
    "heart_rate": "/min", "oxygen_saturation": "%", "respiratory_rate": "/min",
    "blood_pressure_systolic": "mmHg", "blood_pressure_diastolic": "mmHg",
    "temperature": "°C", "glucose": "mg/dL",
}


class ReadingsPanel(QWidget):
    """Stored records, newest first, one page at a time (``Load older``)."""

    COLUMNS = ("Time", "Vital", "Value", "Unit", "Entered", "Device", "Input", "Notes")
    older_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.table = make_table(self.COLUMNS, self)
        self.status = QLabel("Loading…", self)
        self.older_button = QPushButton("Load older readings", self)
        self.older_button.clicked.connect(self.older_requested)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.older_button)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self.oldest: tuple[datetime, int] | None = None

    def clear(self) -> None:
        """Forget every row (a new range)."""
        self.table.setRowCount(0)
        self.oldest = None
        self.status.setText("Loading…")

    def append_page(self, rows: Sequence[RecordRow], *, page_size: int) -> None:
        """Add an older page at the bottom."""
        for record in rows:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._fill(row, record)
        if rows:
            self.oldest = (rows[-1].measured_at, rows[-1].id)
        self.older_button.setEnabled(len(rows) == page_size)
        self.status.setText(f"{self.table.rowCount():,} readings shown, newest first")

    def prepend_live(self, rows: Sequence[RecordRow]) -> None:
        """Readings that just arrived, at the top (``rows`` oldest first)."""
        for record in rows:
            self.table.insertRow(0)
            self._fill(0, record)

    def _fill(self, row: int, record: RecordRow) -> None:
        items = set_row(self.table, row, (
            local_time(record.measured_at, date=True), vital_name(record.vital),
            format_value(record.value), unit_text(record.unit),
            "manual" if record.data_source == "manual" else "device",
            record.device_id or "", record.input, record.notes or "",
        ))
        items[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class TrailPanel(QWidget):
    """Every step of the bed's alarms (raised, asked, answered, escalated, acknowledged…)."""

    COLUMNS = ("Time", "Priority", "Alarm", "Step", "Who", "From", "Details")

    def __init__(self, colors: ThemeColors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colors = colors
        layout = QVBoxLayout(self)
        self.table = make_table(self.COLUMNS, self)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(2, 320)
        self.status = QLabel("Loading…", self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)

    def set_colors(self, colors: ThemeColors) -> None:
        """Day or night; rows filled from now on take these (the window reloads the trail)."""
        self._colors = colors

    def show_events(self, events: Sequence[TrailEvent]) -> None:
        """Replace the rows (``events`` newest first)."""
        self.table.setRowCount(0)
        for event in events:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._fill(row, event.at, event.priority, event.message, event.event, event.actor,
                       event.origin, event.details)
        self.status.setText(f"{len(events)} alarm steps in this range" if events
                            else "No alarm in this range.")

    def prepend(self, at: datetime, priority: str, message: str, event: str, actor: str,
                origin: str, details: dict[str, Any]) -> None:
        """One step that just happened, at the top."""
        self.table.insertRow(0)
        self._fill(0, at, priority, message, event, actor, origin, details)

    def _fill(self, row: int, at: datetime, priority: str, message: str, event: str,
              actor: str, origin: str, details: dict[str, Any]) -> None:
        shown = details_text(details)
        items = set_row(self.table, row, (
            local_time(at, date=True), priority_text(priority), message, event_text(event),
            actor, origin, shown,
        ))
        items[1].setBackground(alarm_qcolor(self._colors, priority))
        items[1].setForeground(on_alarm_qcolor(self._colors, priority))


@dataclass(frozen=True, slots=True)
class PatientLimits:
    """What the limits tab shows: the limits in force per vital, and who changed which."""

    patient_id: str
    limits: dict[str, VitalLimits]
    overrides: dict[str, LimitOverride]


class LimitsPanel(QWidget):
    """The patient's limits in force; one vital's limits editable, with a reason (audited)."""

    apply_requested = Signal(str, object, str)  # vital, tuple[Limit, ...], reason
    restore_requested = Signal(str, str)  # vital, reason

    def __init__(self, colors: ThemeColors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colors = colors
        self._limits: PatientLimits | None = None
        layout = QVBoxLayout(self)
        self.table = make_table(("Vital", "Limits in force", "Set by"), self)
        layout.addWidget(self.table, 1)

        editor = QGroupBox("Change a limit for this patient (audited)", self)
        form = QGridLayout(editor)
        self.vital_combo = QComboBox(editor)
        self.vital_combo.setMinimumWidth(200)
        for vital in LIMIT_VITALS:
            self.vital_combo.addItem(vital_name(vital), vital)
        self.vital_combo.currentIndexChanged.connect(self._show_editor)
        form.addWidget(QLabel("Vital", editor), 0, 0)
        form.addWidget(self.vital_combo, 0, 1)
        form.setColumnStretch(2, 1)
        self._rows_box = QWidget(editor)
        self._rows = QFormLayout(self._rows_box)
        self._rows.setContentsMargins(0, 0, 0, 0)
        form.addWidget(self._rows_box, 1, 0, 1, 3)
        self.reason_edit = QLineEdit(editor)
        self.reason_edit.setPlaceholderText("Reason (required), e.g. athlete, resting HR 42")
        form.addWidget(QLabel("Reason", editor), 2, 0)
        form.addWidget(self.reason_edit, 2, 1, 1, 2)
        self.apply_button = QPushButton("Apply new limits", editor)
        self.apply_button.clicked.connect(self._on_apply)
        self.restore_button = QPushButton("Back to the ward profile", editor)
        self.restore_button.setToolTip("End this patient's own limits for the vital")
        self.restore_button.clicked.connect(self._on_restore)
        actions = QHBoxLayout()
        actions.addStretch(1)
        actions.addWidget(self.restore_button)
        actions.addWidget(self.apply_button)
        form.addLayout(actions, 3, 2)
        self.status = QLabel("", editor)
        self.status.setWordWrap(True)
        form.addWidget(self.status, 3, 0, 1, 2)
        layout.addWidget(editor)
        self._spins: list[tuple[Limit, QDoubleSpinBox]] = []
        self.setEnabled(False)

    def set_colors(self, colors: ThemeColors) -> None:
        """Day or night: the table is filled again in these."""
        self._colors = colors
        if self._limits is not None:
            self.show_limits(self._limits)

    def show_limits(self, limits: PatientLimits | None) -> None:
        """The limits in force (None: nobody in the bed, nothing to edit)."""
        self._limits = limits
        self.setEnabled(limits is not None)
        self.table.setRowCount(0)
        if limits is None:
            self.status.setText("No patient in this bed.")
            return
        for vital in LIMIT_VITALS:
            vital_limits = limits.limits.get(vital)
            if vital_limits is None:
                continue
            row = self.table.rowCount()
            self.table.insertRow(row)
            override = limits.overrides.get(vital)
            who = (f"{override.author}, {local_time(override.at, date=True)}: {override.reason}"
                   if override is not None else "ward profile")
            items = set_row(self.table, row, (
                f"{vital_name(vital)} ({LIMIT_UNITS[vital]})",
                describe_limits(vital_limits.limits), who,
            ))
            if override is not None:
                items[2].setForeground(QColor(self._colors.warning))
        self._show_editor()

    def _show_editor(self) -> None:
        while self._rows.rowCount():
            self._rows.removeRow(0)
        self._spins = []
        vital = self.vital_combo.currentData()
        current = None if self._limits is None else self._limits.limits.get(vital)
        self.restore_button.setEnabled(
            self._limits is not None and vital in self._limits.overrides
        )
        if current is None:
            return
        for limit in current.limits:
            spin = QDoubleSpinBox(self._rows_box)
            spin.setDecimals(1 if vital == "temperature" else 0)
            spin.setRange(0.0, 400.0)
            spin.setValue(limit.value)
            spin.setSuffix(f" {LIMIT_UNITS[vital]}")
            spin.setMinimumWidth(140)
            spin.setMaximumWidth(180)
            self._rows.addRow(_limit_label(limit), spin)
            self._spins.append((limit, spin))

    def _on_apply(self) -> None:
        reason = self.reason_edit.text().strip()
        if not reason:
            self.status.setText("Give the reason for the change: it is kept in the audit log.")
            return
        limits = tuple(
            Limit(limit.direction, float(spin.value()), limit.priority, limit.inclusive)
            for limit, spin in self._spins
        )
        self.status.setText("Saving…")
        self.apply_requested.emit(self.vital_combo.currentData(), limits, reason)

    def _on_restore(self) -> None:
        reason = self.reason_edit.text().strip()
        if not reason:
            self.status.setText("Give the reason for the change: it is kept in the audit log.")
            return
        self.status.setText("Saving…")
        self.restore_requested.emit(self.vital_combo.currentData(), reason)

    def applied(self, text: str) -> None:
        """The service stored the override (or refused it): say so."""
        self.status.setText(text)
        if not text.startswith("Not done"):
            self.reason_edit.clear()


def _limit_label(limit: Limit) -> str:
    side = "above" if limit.direction is Direction.HIGH else "below"
    return f"{priority_text(limit.priority)} alarm {side}"


def describe_limits(limits: Iterable[Limit]) -> str:
    """``*** < 40 · ** < 50 · ** > 110 · *** > 130`` (lows first, then highs)."""
    lows = sorted((lim for lim in limits if lim.direction is Direction.LOW),
                  key=lambda lim: lim.value)
    highs = sorted((lim for lim in limits if lim.direction is Direction.HIGH),
                   key=lambda lim: lim.value)
    return " · ".join(f"{lim.priority.marker} {lim.describe()}" for lim in lows + highs)


# The manual vitals of the form: InHealth field, label, unit shown, plausible entry range.
MANUAL_FIELDS = (
    ("heart_rate", "Heart rate", "/min", 0.0, 350.0),
    ("respiratory_rate", "Resp. rate", "/min", 0.0, 100.0),
    ("oxygen_saturation", "SpO₂", "%", 0.0, 100.0),
    ("blood_pressure_systolic", "BP systolic", "mmHg", 0.0, 350.0),
    ("blood_pressure_diastolic", "BP diastolic", "mmHg", 0.0, 250.0),
    ("temperature", "Temperature", "°C", 20.0, 46.0),
)
ACVPU = (("", "— not assessed"), ("A", "A: alert"), ("C", "C: new confusion"),
         ("V", "V: responds to voice"), ("P", "P: responds to pain"),
         ("U", "U: unresponsive"))
OXYGEN = (("", "— not assessed"), ("air", "Air"), ("oxygen", "Supplemental oxygen"))


@dataclass(frozen=True, slots=True)
class ObservationEntry:
    """What the nurse typed: vitals by field, ACVPU, air or oxygen (None: not assessed)."""

    vitals: dict[str, float]
    consciousness: str | None
    on_oxygen: bool | None
    minutes_ago: int = 0


class ObservationsPanel(QWidget):
    """Manual observations, so that NEWS2 is complete: ACVPU, air/oxygen, manual vitals."""

    submitted = Signal(object)  # ObservationEntry

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        news2 = QGroupBox("NEWS2 observations", self)
        news2_form = QFormLayout(news2)
        self.acvpu_combo = QComboBox(news2)
        for value, label in ACVPU:
            self.acvpu_combo.addItem(label, value)
        self.oxygen_combo = QComboBox(news2)
        for value, label in OXYGEN:
            self.oxygen_combo.addItem(label, value)
        for combo in (self.acvpu_combo, self.oxygen_combo):
            combo.setMinimumWidth(260)
            combo.setMaximumWidth(340)
        news2_form.addRow("Consciousness (ACVPU)", self.acvpu_combo)
        news2_form.addRow("Air or oxygen", self.oxygen_combo)
        self.news2_status = QLabel("", news2)
        self.news2_status.setWordWrap(True)
        news2_form.addRow("NEWS2 now", self.news2_status)
        layout.addWidget(news2)

        vitals = QGroupBox("Vitals measured by hand (stored as manual)", self)
        grid = QGridLayout(vitals)
        self.vital_edits: dict[str, QLineEdit] = {}
        for index, (field, label, unit, low, high) in enumerate(MANUAL_FIELDS):
            edit = QLineEdit(vitals)
            edit.setValidator(QDoubleValidator(low, high, 1, edit))
            edit.setPlaceholderText("—")
            edit.setMaximumWidth(110)
            row, column = divmod(index, 2)
            grid.addWidget(QLabel(label, vitals), row, column * 3)
            grid.addWidget(edit, row, column * 3 + 1)
            grid.addWidget(QLabel(unit, vitals), row, column * 3 + 2)
            self.vital_edits[field] = edit
        self.minutes_ago = QSpinBox(vitals)
        self.minutes_ago.setRange(0, 12 * 60)
        self.minutes_ago.setSuffix(" min ago")
        self.minutes_ago.setSpecialValueText("now")
        self.minutes_ago.setMaximumWidth(140)
        row_count = (len(MANUAL_FIELDS) + 1) // 2
        grid.addWidget(QLabel("Measured", vitals), row_count, 0)
        grid.addWidget(self.minutes_ago, row_count, 1, 1, 2)
        layout.addWidget(vitals)

        row = QHBoxLayout()
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save observations", self)
        self.save_button.clicked.connect(self._on_save)
        row.addWidget(self.status, 1)
        row.addWidget(self.save_button)
        layout.addLayout(row)
        layout.addStretch(1)

    def show_news2(self, text: str) -> None:
        """What NEWS2 counts now and what it lacks (missing, out of date, assumed)."""
        self.news2_status.setText(text)

    def entry(self) -> ObservationEntry:
        """The form's content (fields left blank are not assessed)."""
        values = {}
        for field, edit in self.vital_edits.items():
            text = edit.text().strip().replace(",", ".")
            if text:
                values[field] = float(text)
        acvpu = self.acvpu_combo.currentData() or None
        oxygen = self.oxygen_combo.currentData()
        return ObservationEntry(values, acvpu, None if not oxygen else oxygen == "oxygen",
                                self.minutes_ago.value())

    def _on_save(self) -> None:
        try:
            entry = self.entry()
        except ValueError as exc:
            self.status.setText(f"Not a number: {exc}")
            return
        if not entry.vitals and entry.consciousness is None and entry.on_oxygen is None:
            self.status.setText("Enter at least one observation.")
            return
        self.status.setText("Saving…")
        self.save_button.setEnabled(False)
        self.submitted.emit(entry)

    def saved(self, text: str, *, ok: bool) -> None:
        """The observation was stored (clear the form) or refused (keep it, say why)."""
        self.status.setText(text)
        self.save_button.setEnabled(True)
        if ok:
            for edit in self.vital_edits.values():
                edit.clear()
            self.acvpu_combo.setCurrentIndex(0)
            self.oxygen_combo.setCurrentIndex(0)
            self.minutes_ago.setValue(0)
