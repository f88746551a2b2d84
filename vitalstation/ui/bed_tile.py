"""One bed's tile: who is in it, the numerics with units coloured by alarm state, a trend curve,
the data's age when it goes stale, battery and signal, and the input it came by.

Everything is cheap to refresh (128 tiles at 5,000 readings/s on a shared 2-core machine):

- the numbers that change with every reading are :class:`StableLabel` s, whose size depends on
  their font only: a new value repaints the label and nothing else (a plain ``QLabel.setText``
  re-computes its size hint and invalidates every layout up to the grid, so that one changed
  number re-laid out all 128 tiles);
- a label's text is only set when it changed, tooltips likewise, visibility only when it flips;
- the alarm and stale looks are dynamic properties, given their calm values before the first
  polish and re-polished only when they change (remembered here, not read back from Qt);
- the curve is redrawn only when :class:`~vitalstation.ui.bed_grid.BedGrid` asks (at most once
  a second per tile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from vitalstation.alarms import Alarm, AlarmKind, AlarmState, Priority
from vitalstation.domain.vitals import VitalKind
from vitalstation.ui.live_model import TREND_WINDOW_S, TileState
from vitalstation.ui.theme import ThemeColors

# The trend's first vertical span (heart rate, /min) and the smallest one it zooms to.
TREND_Y_RANGE = (40.0, 160.0)
TREND_MIN_SPAN = 30.0
# The trend's height per grid density (see bed_grid.py).
TREND_HEIGHT_PX = {"normal": 44, "compact": 20, "wall": 90}


@dataclass(frozen=True, slots=True)
class Numeric:
    """One numeric cell: its caption, unit and the vitals it shows."""

    key: str
    caption: str
    unit: str
    vitals: tuple[VitalKind, ...]
    decimals: int = 0
    big: bool = False
    template: str = "888"  # the widest value it is sized for (see StableLabel)


NUMERICS: tuple[Numeric, ...] = (
    Numeric("hr", "HR", "/min", (VitalKind.HEART_RATE,), big=True),
    Numeric("spo2", "SpO₂", "%", (VitalKind.SPO2,), big=True),
    Numeric("bp", "BP", "mmHg", (VitalKind.SYSTOLIC_BP, VitalKind.DIASTOLIC_BP),
            template="888/888"),
    Numeric("temp", "Temp", "°C", (VitalKind.TEMPERATURE,), decimals=1, template="88.8"),
    Numeric("rr", "RR", "/min", (VitalKind.RESPIRATORY_RATE,), template="88"),
    Numeric("news2", "NEWS2", "", (), template="≥88"),
)
_CELL_OF_VITAL = {v: n.key for n in NUMERICS for v in n.vitals}
NO_VALUE = "--"


def format_age(seconds: float) -> str:
    """``2:15 ago``, ``1:02:15 ago``: how old the data shown is."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d} ago"
    return f"{minutes}:{secs:02d} ago"


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


def _set_tip(widget: QWidget, text: str) -> None:
    if widget.toolTip() != text:
        widget.setToolTip(text)


def _set_visible(widget: QWidget, visible: bool) -> None:
    if widget.isHidden() == visible:
        widget.setVisible(visible)


class Looks:
    """The style-sheet properties (``alarm``, ``stale``, ``empty``) of one tile's widgets, as
    last set: a look is re-polished only when it changes, and checked without asking Qt."""

    def __init__(self) -> None:
        self._shown: dict[tuple[int, str], str] = {}

    def init(self, widget: QWidget, name: str, value: str) -> None:
        """The first look, before the widget is polished (so showing it costs no re-polish)."""
        widget.setProperty(name, value)
        self._shown[(id(widget), name)] = value

    def set(self, widget: QWidget, name: str, value: str,
            dependents: Sequence[QWidget] = ()) -> None:
        """Set a property and re-polish, only when it changed; ``dependents`` too (their look
        depends on this property: the labels of a numeric cell take its alarm colour)."""
        key = (id(widget), name)
        if self._shown.get(key) == value:
            return
        self._shown[key] = value
        widget.setProperty(name, value)
        for target in (widget, *dependents):
            style = target.style()
            style.unpolish(target)
            style.polish(target)
            if isinstance(target, StableLabel):
                target.keep_opaque()


class ElidedLabel(QLabel):
    """A label that shortens its text with "…" instead of widening the tile."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """As narrow as a few characters."""
        hint = super().minimumSizeHint()
        return QSize(self.fontMetrics().horizontalAdvance("M…"), hint.height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """The text's width, but never forcing the layout wider."""
        hint = super().sizeHint()
        return QSize(min(hint.width(), 40), hint.height())

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        """Draw the text elided to the label's width."""
        painter = QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             self.contentsRect().width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment()), text)


class StableLabel(QLabel):
    """A label whose size depends on its font, not its text: ``setText`` only repaints it.

    ``template`` is the widest text it is sized for (``888/888`` for blood pressure); a longer
    text is elided with "…" rather than widening the tile. The text is kept here and painted
    by :meth:`paintEvent` (QLabel's own text stays empty, so it never asks for a relayout).
    With a :meth:`set_background` it paints its own background and is opaque: a new value
    repaints the label's rectangle only, not the style-sheet backgrounds of the cell and tile
    behind it.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, *,
                 template: str = "M", minimum: str = "M…") -> None:
        super().__init__(parent)
        self._text = text
        self._template = template
        self._minimum = minimum
        self._background: QColor | None = None

    def set_background(self, color: str | None) -> None:
        """The solid colour behind the text (the cell's), or None: transparent."""
        background = QColor(color) if color is not None else None
        if background == self._background:
            return
        self._background = background
        self.keep_opaque()
        self.update()

    def event(self, event: QEvent) -> bool:
        """A polish by the style sheet clears the opaque flag: set it again."""
        handled = super().event(event)
        if event.type() == QEvent.Type.Polish:
            self.keep_opaque()
        return handled

    def keep_opaque(self) -> None:
        """Opaque exactly when it paints its own background (again after a re-polish)."""
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, self._background is not None)

    def text(self) -> str:
        """The text shown (elided if it does not fit)."""
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Show ``text``: a repaint of this label only, never a relayout."""
        if text != self._text:
            self._text = text
            self.update()

    def _hint(self, sample: str) -> QSize:
        metrics = self.fontMetrics()
        margins = self.contentsMargins()
        return QSize(metrics.horizontalAdvance(sample) + margins.left() + margins.right() + 2,
                     metrics.height() + margins.top() + margins.bottom())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """Room for the template."""
        return self._hint(self._template)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """Room for the minimum sample."""
        return self._hint(self._minimum)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        """Draw the text elided to the label's width."""
        painter = QPainter(self)
        if self._background is not None:
            painter.fillRect(self.rect(), self._background)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight,
                                             rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment()), text)


class TrendCurve(pg.PlotCurveItem):
    """The trend's curve, with fixed bounds: the view's range is set by :class:`TrendView`, so
    the item need not scan its data for its bounds on every ``setData`` (pyqtgraph computes
    them for auto-ranging, which a bare view does not do)."""

    BOUNDS = QRectF(-10.0 * TREND_WINDOW_S, -1e5, 20.0 * TREND_WINDOW_S, 2e5)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        """Everything the view can show."""
        return self.BOUNDS


class TrendView(pg.GraphicsView):
    """The tile's trend: one pyqtgraph curve in a bare view (no plot item, axes or view box:
    a PlotWidget costs ~50 ms to build and ~0.7 ms per redraw, this ~3 ms and ~0.1 ms).

    x is seconds before now (the last TREND_WINDOW_S); y is drawn negated because a bare view
    has the scene's y axis pointing down.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=None)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.curve = TrendCurve(skipFiniteCheck=True)
        self.addItem(self.curve)
        self.y_range = TREND_Y_RANGE
        self._apply_range()

    def set_colors(self, background: str, pen: str) -> None:
        """Theme colours."""
        self.setBackground(background)
        self.curve.setPen(pg.mkPen(pen, width=2))

    def show_points(self, seconds_ago: np.ndarray, values: np.ndarray) -> None:
        """Draw the points (at most two per pixel column: see :func:`decimate`); rescale y
        only when they leave the range or fill under a third of it, so that the curve does not
        jump with every point."""
        if not len(values):
            self.curve.setData([], [])
            return
        seconds_ago, values = decimate(seconds_ago, values, max(16, self.viewport().width()))
        low, high = float(values.min()), float(values.max())
        shown_low, shown_high = self.y_range
        if low < shown_low or high > shown_high or (high - low) * 3 < shown_high - shown_low:
            middle, half = (low + high) / 2, max(TREND_MIN_SPAN / 2, (high - low) * 0.75)
            self.y_range = (middle - half, middle + half)
            self._apply_range()
        self.curve.setData(seconds_ago, -values)

    def _apply_range(self) -> None:
        low, high = self.y_range
        self.setRange(QRectF(-TREND_WINDOW_S, -high, TREND_WINDOW_S, high - low), padding=0)


def decimate(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """At most two points per bin (its lowest and highest, in time order), so that drawing
    costs the plot's width, not the number of readings, and no peak is lost. The few oldest
    points that do not fill a whole bin are left out."""
    n = len(y)
    per = n // bins
    if per < 3:
        return x, y
    skip = n - per * bins
    xs, ys = x[skip:].reshape(bins, per), y[skip:].reshape(bins, per)
    low, high = ys.argmin(axis=1), ys.argmax(axis=1)
    first, second = np.minimum(low, high), np.maximum(low, high)
    rows = np.arange(bins)
    out_x, out_y = np.empty(2 * bins), np.empty(2 * bins)
    out_x[0::2], out_x[1::2] = xs[rows, first], xs[rows, second]
    out_y[0::2], out_y[1::2] = ys[rows, first], ys[rows, second]
    return out_x, out_y


class NumericCell(QWidget):
    """Caption (with the alarm's ``***`` marker), value and unit of one numeric."""

    def __init__(self, numeric: Numeric, looks: Looks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.numeric = numeric
        self._looks = looks
        self.setObjectName("numericCell")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        layout.setSpacing(0)
        top = QHBoxLayout()
        top.setSpacing(3)
        self.caption = QLabel(numeric.caption, self)
        self.caption.setObjectName("vitalCaption")
        self.unit = QLabel(numeric.unit, self)
        self.unit.setObjectName("vitalUnit")
        top.addWidget(self.caption)
        top.addStretch(1)
        top.addWidget(self.unit)
        self.value = StableLabel(NO_VALUE, self, template=numeric.template,
                                 minimum=numeric.template)
        self.value.setObjectName("vitalValueBig" if numeric.big else "vitalValue")
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.addLayout(top)
        layout.addWidget(self.value)
        self._marker = ""
        self._labels = (self.caption, self.unit, self.value)
        self._colors: ThemeColors | None = None
        self._look = "none"
        looks.init(self, "alarm", "none")
        looks.init(self.value, "stale", "false")

    def set_colors(self, colors: ThemeColors) -> None:
        """Theme change: the value's own background follows the cell's."""
        self._colors = colors
        self._paint_value_background()

    def _paint_value_background(self) -> None:
        """The cell's fill behind the value (the tile's surface or the alarm colour); none
        when the cell is only outlined (acknowledged), where the value stays transparent."""
        colors = self._colors
        if colors is None or self._look.endswith("-ack"):
            self.value.set_background(None)
        elif self._look == "none":
            self.value.set_background(colors.surface)
        else:
            self.value.set_background(colors.alarm_color(Priority(self._look)))

    def show_value(self, text: str, *, alarm: Priority | None, acknowledged: bool,
                   stale: bool, tooltip: str = "") -> None:
        """Text and looks; each set only when it changed."""
        _set_text(self.value, text)
        marker = alarm.marker if alarm is not None else ""
        if marker != self._marker:
            self._marker = marker
            self.caption.setText(f"{self.numeric.caption} {marker}".strip())
        look = "none" if alarm is None else alarm.value + ("-ack" if acknowledged else "")
        if look != self._look:
            self._look = look
            self._looks.set(self, "alarm", look, self._labels)
            self._paint_value_background()
        self._looks.set(self.value, "stale", "true" if stale else "false")
        _set_tip(self, tooltip)


class BedTile(QFrame):
    """One tile of the bed grid; ``activated`` (its key) when clicked."""

    activated = Signal(str)

    def __init__(self, key: str, colors: ThemeColors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.looks = Looks()
        self.setObjectName("bedTile")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        self._layout = layout
        self.density = "normal"

        header = QHBoxLayout()
        header.setSpacing(6)
        self.bed_label = QLabel(self)
        self.bed_label.setObjectName("bedLabel")
        self.patient_label = StableLabel("", self, template="M" * 3)
        self.patient_label.setObjectName("patientLabel")
        header.addWidget(self.bed_label)
        header.addWidget(self.patient_label, 1)
        layout.addLayout(header)

        # The source line: input, battery, signal; and, when something is wrong, what.
        source = QHBoxLayout()
        source.setSpacing(4)
        self.marks_label = StableLabel(template="MQTT · bat 100% · sig 100")
        self.marks_label.setObjectName("marksLabel")
        self.status_label = StableLabel(template="M" * 3)
        self.status_label.setObjectName("tileStatus")
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        source.addWidget(self.marks_label)
        source.addWidget(self.status_label, 1)
        self.source_row = QWidget(self)
        self.source_row.setLayout(source)
        source.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.source_row)

        self.numerics = QWidget(self)
        grid = QGridLayout(self.numerics)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(2)
        grid.setVerticalSpacing(1)
        self.cells: dict[str, NumericCell] = {}
        for index, numeric in enumerate(NUMERICS):
            cell = NumericCell(numeric, self.looks, self.numerics)
            self.cells[numeric.key] = cell
            row, column = (0, index) if numeric.big else (1, index - 2)
            if numeric.big:
                grid.addWidget(cell, 0, index * 2, 1, 2)
            else:
                grid.addWidget(cell, row, column)
        layout.addWidget(self.numerics, 1)

        self.plot = TrendView(self)
        self.plot.setObjectName("trendPlot")
        self.plot.setFixedHeight(TREND_HEIGHT_PX["normal"])
        self.trend_version = -1
        layout.addWidget(self.plot)
        self.looks.init(self, "alarm", "none")
        self.looks.init(self, "empty", "false")
        self.looks.init(self.status_label, "alarm", "none")
        self.set_colors(colors)

    # -- looks ---------------------------------------------------------------------------

    def set_density(self, density: str) -> None:
        """``normal``, ``compact`` (64 beds on one screen) or ``wall`` (read at 4 m).

        Compact tiles drop the source line (input, battery and signal stay in the tooltip)
        and show a problem in place of the patient's name.
        """
        if density == self.density:
            return
        self.density = density
        self.plot.setFixedHeight(TREND_HEIGHT_PX[density])
        compact = density == "compact"
        self.source_row.setVisible(not compact)
        margin = 3 if compact else 6
        self._layout.setContentsMargins(margin, 2 if compact else 4, margin, 2 if compact else 4)
        self._layout.setSpacing(1 if compact else 2)
        for cell in self.cells.values():
            cell.layout().setContentsMargins(2 if compact else 4, 0, 2 if compact else 4, 0)

    def set_colors(self, colors: ThemeColors) -> None:
        """Theme change: the curve and the plot background (the rest is the style sheet)."""
        self._colors = colors
        self.plot.set_colors(colors.surface, colors.trend)
        for cell in self.cells.values():
            cell.set_colors(colors)

    # -- data ------------------------------------------------------------------------------

    def show_state(self, tile: TileState, alarms: Sequence[Alarm], now: datetime) -> None:
        """Numerics, marks, stale looks and alarm colours of ``tile`` at ``now``."""
        if tile.is_device:
            _set_text(self.bed_label, tile.label)
            who = "not assigned to a bed"
        else:
            _set_text(self.bed_label, f"Bed {tile.label}")
            who = _patient_text(tile)
        _set_tip(self.patient_label, who)
        marks = _marks(tile)
        _set_text(self.marks_label, marks)
        _set_visible(self.marks_label, bool(marks))  # no marks: the status line has the room

        levels, acknowledged, device_level = _alarm_levels(alarms)
        bed_level = max((a.priority for a in alarms
                         if a.state is not AlarmState.ACKNOWLEDGED), default=None)
        self.looks.set(self, "alarm", "none" if bed_level is None else bed_level.value)
        self.looks.set(self, "empty", "true" if tile.is_empty else "false")

        stale = tile.stale_vitals(now)
        all_stale = bool(tile.values) and len(stale) == len(tile.values)
        status = ""
        if tile.is_empty:
            status = "Empty bed"
        elif not tile.values:
            status = "No data yet" if not tile.devices else f"No data yet from {tile.devices[0]}"
        elif all_stale and tile.last_arrived_at is not None:
            age = (now - tile.last_arrived_at).total_seconds()
            status = f"No data · {format_age(age)}"
        elif device_level is not None:
            worst = max((a for a in alarms if a.kind is AlarmKind.TECHNICAL),
                        key=lambda a: a.priority.rank)
            status = f"{worst.priority.marker} {worst.message}"
        _set_text(self.status_label, status)
        _set_tip(self.status_label, status)
        if self.density == "compact":
            _set_text(self.patient_label, status or who)
            _set_tip(self, f"{who}\n{marks}\n{status}".strip())
        else:
            _set_text(self.patient_label, who)
        self.looks.set(self.status_label, "alarm",
                       "none" if device_level is None or all_stale else device_level.value)
        _set_visible(self.numerics, not tile.is_empty)
        _set_visible(self.plot, not tile.is_empty)

        for numeric in NUMERICS:
            cell = self.cells[numeric.key]
            if numeric.key == "news2":
                text, is_stale, tip = _news2_text(tile)
            else:
                text, is_stale, tip = _numeric_text(numeric, tile, stale, now)
            cell.show_value(text, alarm=levels.get(numeric.key),
                            acknowledged=numeric.key in acknowledged, stale=is_stale,
                            tooltip=tip)

    def show_trend(self, tile: TileState, now: datetime) -> None:
        """Redraw the curve (the grid calls this at most once a second per tile)."""
        times, values = tile.trend.view()
        self.trend_version = tile.trend_version
        self.plot.show_points(times - now.timestamp(), values)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        """A click opens the bed's detail."""
        if event.button() == Qt.MouseButton.LeftButton:
            self.activated.emit(self.key)
            event.accept()
            return
        super().mousePressEvent(event)


def _patient_text(tile: TileState) -> str:
    if tile.patient_id is None:
        return "no patient" if tile.values else ""
    name = tile.patient_name or ""
    return f"{name} ({tile.patient_id})" if name else tile.patient_id


def _marks(tile: TileState) -> str:
    """Input, battery and signal, as text (colour is never the only cue)."""
    parts = []
    if tile.input:
        parts.append(tile.input.upper())
    if tile.battery is not None:
        parts.append(f"bat {tile.battery:.0f}%")
    if tile.signal is not None:
        parts.append(f"sig {tile.signal:.0f}")
    return " · ".join(parts)


def _alarm_levels(alarms: Sequence[Alarm]) -> tuple[dict[str, Priority], set[str],
                                                    Priority | None]:
    """Per numeric cell: the highest alarm priority; which are all acknowledged; and the
    highest technical (device) alarm priority of the bed."""
    levels: dict[str, Priority] = {}
    unacknowledged: set[str] = set()
    device_level: Priority | None = None
    for alarm in alarms:
        if alarm.kind is AlarmKind.NEWS2:
            cell = "news2"
        elif alarm.kind is AlarmKind.LIMIT and alarm.vital is not None:
            cell = _CELL_OF_VITAL.get(alarm.vital)
        else:
            device_level = max(device_level or alarm.priority, alarm.priority)
            continue
        if cell is None:
            continue
        levels[cell] = max(levels.get(cell, alarm.priority), alarm.priority)
        if alarm.state is not AlarmState.ACKNOWLEDGED:
            unacknowledged.add(cell)
    return levels, set(levels) - unacknowledged, device_level


def _numeric_text(numeric: Numeric, tile: TileState, stale: set[VitalKind],
                  now: datetime) -> tuple[str, bool, str]:
    values = [tile.values.get(v) for v in numeric.vitals]
    if all(v is None for v in values):
        return NO_VALUE, False, ""
    parts = [NO_VALUE if v is None else f"{v.value:.{numeric.decimals}f}" for v in values]
    is_stale = any(v in stale for v in numeric.vitals if tile.values.get(v) is not None)
    newest = max(v.arrived_at for v in values if v is not None)
    tip = f"{numeric.caption}: {format_age((now - newest).total_seconds())}"
    return "/".join(parts), is_stale, tip


def _news2_text(tile: TileState) -> tuple[str, bool, str]:
    result = tile.news2
    if result is None:
        return NO_VALUE, False, "NEWS2: not enough observations"
    if result.complete:
        return str(result.total), False, f"NEWS2 {result.total} ({result.risk})"
    missing = ", ".join(str(p) for p in (*result.missing, *result.stale))
    return f"≥{result.minimum_total}", True, f"NEWS2 at least {result.minimum_total}; " \
        f"missing: {missing}"
