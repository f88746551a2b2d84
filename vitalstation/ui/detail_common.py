"""Small shared pieces of the alarm list, bed detail, escalation and export windows: who is
acting, from where, and how times, vitals and priorities are written for a nurse."""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from vitalstation.alarms import Priority
from vitalstation.domain.vitals import VitalKind
from vitalstation.ui.theme import ThemeColors

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

VITAL_NAMES: dict[str, str] = {
    VitalKind.HEART_RATE.value: "Heart rate",
    VitalKind.SPO2.value: "SpO₂",
    VitalKind.RESPIRATORY_RATE.value: "Resp. rate",
    VitalKind.SYSTOLIC_BP.value: "BP systolic",
    VitalKind.DIASTOLIC_BP.value: "BP diastolic",
    VitalKind.TEMPERATURE.value: "Temperature",
    VitalKind.GLUCOSE.value: "Glucose",
    VitalKind.WEIGHT.value: "Weight",
}

# Stored (UCUM) units as a nurse writes them.
UNIT_TEXT: dict[str, str] = {
    "/min": "/min", "mm[Hg]": "mmHg", "Cel": "°C", "[degF]": "°F", "%": "%",
    "mg/dL": "mg/dL", "mmol/L": "mmol/L", "kg": "kg", "[lb_av]": "lb",
}


def operator_name() -> str:
    """Who acts at this station: the logged-in account (as the CLI's ``cli:<login>``)."""
    try:
        return getpass.getuser() or "station"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "station"


def station_origin(runtime: Runtime) -> str:
    """``station:<name>``: where an action taken in this window comes from (audited)."""
    return f"station:{runtime.settings.station.name}"


def local_time(at: datetime | None, *, seconds: bool = True, date: bool = False) -> str:
    """A stored UTC time in the station's local time, e.g. ``03:14:07`` or ``23 Nov 03:14``."""
    if at is None:
        return ""
    local = at.astimezone()
    text = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{local:%d %b} {text}" if date else text


def vital_name(vital: str | None) -> str:
    """``heart_rate`` → ``Heart rate``."""
    if not vital:
        return ""
    return VITAL_NAMES.get(vital, vital.replace("_", " ").capitalize())


def unit_text(unit: str) -> str:
    """``Cel`` → ``°C``."""
    return UNIT_TEXT.get(unit, unit)


def format_value(value: float | None) -> str:
    """A value as the monitor shows it: whole numbers without decimals, else one decimal."""
    if value is None:
        return ""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def priority_of(name: str | Priority) -> Priority:
    """A stored priority name as the enum."""
    return name if isinstance(name, Priority) else Priority(name)


def priority_text(priority: str | Priority) -> str:
    """``*** high``: colour is never the only cue (IEC 60601-1-8)."""
    level = priority_of(priority)
    return f"{level.marker} {level.value}"


def alarm_qcolor(colors: ThemeColors, priority: str | Priority) -> QColor:
    """The IEC colour of a priority."""
    return QColor(colors.alarm_color(priority_of(priority)))


def on_alarm_qcolor(colors: ThemeColors, priority: str | Priority) -> QColor:
    """The text colour that reads on the IEC colour."""
    return QColor(colors.on_alarm_color(priority_of(priority)))


def event_text(event: str) -> str:
    """``patient_answered`` → ``patient answered``."""
    return event.replace("_", " ")


def make_table(columns: Sequence[str], parent: QWidget) -> QTableWidget:
    """A read-only table of rows, columns sized to their content, the last one stretched."""
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def set_row(table: QTableWidget, row: int, texts: Iterable[str]) -> list[QTableWidgetItem]:
    """Fill one row with texts (each also its tooltip, for a clipped cell)."""
    items = []
    for column, text in enumerate(texts):
        item = QTableWidgetItem(text)
        item.setToolTip(text)
        table.setItem(row, column, item)
        items.append(item)
    return items


def make_font(points: int, *, bold: bool = False) -> QFont:
    """The default font at ``points``."""
    font = QFont()
    font.setPointSize(points)
    font.setBold(bold)
    return font


def details_text(details: dict[str, Any]) -> str:
    """An event's details for a nurse: empty values left out, stored times in local time,
    ``[before, after]`` pairs as ``before → after``."""
    parts = []
    for key, value in details.items():
        if value in (None, "", [], {}):
            continue
        parts.append(f"{key.replace('_', ' ')}: {_detail_value(value)}")
    return ", ".join(parts)


def _detail_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
        return local_time(at) if at.tzinfo is not None else value
    if isinstance(value, list | tuple):
        items = [_detail_value(v) for v in value]
        return " → ".join(items) if len(items) == 2 else ", ".join(items)
    return str(value)


def detail_style_sheet(colors: ThemeColors, *, font_pt: int | None = 11) -> str:
    """The detail windows' own style sheet, so that they follow the day and night themes
    whoever their parent is (a top-level window gets none of the main window's backgrounds).
    ``font_pt``: the text size of tables, forms and buttons (None: the application's, for the
    dock, whose minimum width must not grow the main window)."""
    c = colors
    size = "" if font_pt is None else (
        f"QTabWidget QWidget, QTableView, QGroupBox, QPushButton, QLineEdit "
        f"{{ font-size: {font_pt}pt; }}"
    )
    return f"""
QWidget {{ background: {c.window}; color: {c.text}; }}
QLabel {{ background: transparent; }}
{size}
QTabWidget::pane {{ border: 1px solid {c.surface_border}; background: {c.surface}; }}
QTabBar::tab {{
    background: {c.window}; color: {c.muted_text}; border: 1px solid {c.surface_border};
    padding: 6px 14px; margin-right: 2px;
}}
QTabBar::tab:selected {{ background: {c.surface}; color: {c.text}; font-weight: bold; }}
QTableView {{
    background: {c.surface}; color: {c.text}; gridline-color: {c.surface_border};
    selection-background-color: {c.trend}; selection-color: {c.surface};
}}
QHeaderView::section {{
    background: {c.window}; color: {c.text}; border: none;
    border-right: 1px solid {c.surface_border}; border-bottom: 1px solid {c.surface_border};
    padding: 3px 6px;
}}
QLineEdit {{
    background: {c.surface}; color: {c.text}; border: 1px solid {c.surface_border};
    border-radius: 3px; padding: 3px 6px;
}}
QComboBox, QSpinBox, QDoubleSpinBox, QDateTimeEdit {{ background: {c.surface}; color: {c.text}; }}
QComboBox QAbstractItemView {{ background: {c.surface}; color: {c.text}; }}
QPushButton {{
    background: {c.surface}; color: {c.text}; border: 1px solid {c.surface_border};
    border-radius: 4px; padding: 5px 12px;
}}
QPushButton:hover {{ border-color: {c.text}; }}
QPushButton:checked {{ background: {c.trend}; color: {c.surface}; font-weight: bold; }}
QPushButton:disabled {{ color: {c.stale_text}; }}
QGroupBox {{
    border: 1px solid {c.surface_border}; border-radius: 4px; margin-top: 16px;
    padding-top: 8px; font-weight: bold;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; }}
QScrollBar {{ background: {c.window}; }}
"""
