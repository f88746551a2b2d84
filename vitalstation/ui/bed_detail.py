"""The bed detail window: a patient's trends over 1 h / 8 h / 24 h / 72 h with alarm markers and
limits, the readings, the alarm and escalation trail, the limits (editable with a reason) and
the manual observations that complete NEWS2.

Nothing here waits on the database or the alarm service's lock: every load and action goes to
:class:`BackgroundTasks` and comes back as a callback on the GUI thread. Trends arrive already
downsampled (min/max per bucket, so spikes survive) and are drawn as a peak envelope; the newest
readings are polled every few seconds and appended; alarm transitions of the bed arrive pushed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from vitalstation.alarms import (
    Alarm,
    AlarmActionError,
    AlarmTransition,
    News2Result,
    Priority,
    Risk,
    TransitionKind,
)
from vitalstation.app.history import BedTrends, HistoryService, TrendWindow
from vitalstation.app.observations import ObservationService
from vitalstation.domain.errors import UserError
from vitalstation.storage.history import AlarmMarker, RecordRow, Scope, TrailEvent
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.detail_common import (
    detail_style_sheet,
    format_value,
    local_time,
    make_font,
    operator_name,
    priority_text,
    station_origin,
    unit_text,
)
from vitalstation.ui.detail_panels import (
    LIMIT_VITALS,
    LimitsPanel,
    ObservationEntry,
    ObservationsPanel,
    PatientLimits,
    ReadingsPanel,
    TrailPanel,
)
from vitalstation.ui.tasks import BackgroundTasks
from vitalstation.ui.theme import palette_for

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime

# The newest readings are fetched this often (a query of a few rows; the grid is live anyway).
LIVE_REFRESH_MS = 5000
READINGS_PAGE_ROWS = 200
# Buckets per trend: about one per horizontal pixel of the plot.
TREND_BUCKETS = 1000
# A gap longer than this many bucket widths is drawn as a gap, not a line across it.
GAP_BUCKETS = 3.0
# The big numbers show values measured within this long.
LATEST_WITHIN = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class TrendGroup:
    """One plot: its short title, unit, vitals, and the y range always shown (a trend drawn on
    its own data's range makes 2 beats per minute look like a crisis)."""

    title: str
    unit: str
    vitals: tuple[str, ...]
    y_range: tuple[float, float]


TREND_GROUPS = (
    TrendGroup("HR", "/min", ("heart_rate",), (40.0, 160.0)),
    TrendGroup("SpO₂", "%", ("oxygen_saturation",), (80.0, 100.0)),
    TrendGroup("RR", "/min", ("respiratory_rate",), (5.0, 35.0)),
    TrendGroup("BP", "mmHg", ("blood_pressure_systolic", "blood_pressure_diastolic"),
               (40.0, 200.0)),
    TrendGroup("Temp", "°C", ("temperature",), (35.0, 40.0)),
)
_GROUP_OF = {vital: group for group in TREND_GROUPS for vital in group.vitals}

# The big numbers at the top: label, vitals (BP shows systolic/diastolic).
HEADLINE = (
    ("HR", ("heart_rate",)), ("SpO₂", ("oxygen_saturation",)), ("RR", ("respiratory_rate",)),
    ("BP", ("blood_pressure_systolic", "blood_pressure_diastolic")), ("Temp", ("temperature",)),
)


@dataclass(frozen=True, slots=True)
class BedState:
    """The light part of the window: who is in the bed, NEWS2, open alarms, limits, latest."""

    scope: Scope
    news2: News2Result | None
    alarms: list[Alarm]
    limits: PatientLimits | None
    latest: dict[str, RecordRow]


@dataclass(frozen=True, slots=True)
class RangeData:
    """Readings page and alarm trail of the selected range."""

    generation: int
    readings: list[RecordRow]
    trail: list[TrailEvent]


class TrendSeries:
    """One vital's points as drawn: the bucket envelope (min, max per bucket) plus live points."""

    def __init__(self, curve: pg.PlotDataItem) -> None:
        self.curve = curve
        self.x = np.empty(0)
        self.y = np.empty(0)

    def set_buckets(self, times: list[float], lows: list[float], highs: list[float],
                    width_s: float) -> None:
        """Draw the buckets as a peak envelope, with a break across gaps in the data."""
        t = np.asarray(times, dtype=float)
        x = np.repeat(t, 2)
        y = np.column_stack((np.asarray(lows, float), np.asarray(highs, float))).ravel()
        if len(t) > 1:
            gaps = np.nonzero(np.diff(t) > GAP_BUCKETS * max(width_s, 1.0))[0]
            for index in gaps[::-1]:
                at = 2 * (index + 1)
                x = np.insert(x, at, x[at - 1])
                y = np.insert(y, at, np.nan)
        self.x, self.y = x, y
        self._draw()

    def append(self, times: list[float], values: list[float]) -> None:
        """Live points after the buckets."""
        if not times:
            return
        self.x = np.concatenate((self.x, np.asarray(times, float)))
        self.y = np.concatenate((self.y, np.asarray(values, float)))
        self._draw()

    def _draw(self) -> None:
        self.curve.setData(self.x, self.y, connect="finite")


class BedDetailWindow(QWidget):
    """One bed's detail, as a top-level window (deleted when closed).

    ``trends_loaded`` is emitted when a trend range is drawn (tests and the status line).
    """

    trends_loaded = Signal()

    def __init__(
        self,
        runtime: Runtime,
        bed_id: str,
        feed: AlarmFeed,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        theme: str = "day",
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.setObjectName("bedDetail")
        self.bed_id = bed_id
        self._runtime = runtime
        self._tasks = tasks
        self._theme = theme
        self._colors = palette_for(theme)
        self._history = HistoryService(runtime.store, clock=runtime.clock)
        self._observations = ObservationService(
            runtime.store, runtime.pipeline, runtime.alarms,
            station_name=runtime.settings.station.name, clock=runtime.clock,
        )
        self._origin = station_origin(runtime)
        self._scope: Scope | None = None
        self._window = TrendWindow.HOURS_24
        self._generation = 0
        self._trends: BedTrends | None = None
        self._tail_after: datetime | None = None
        self._polling = False
        self._series: dict[str, TrendSeries] = {}
        self._overlays: list[Any] = []
        self._limit_lines: list[Any] = []
        self._limits: PatientLimits | None = None
        self.loading = False
        self.setWindowTitle(f"Bed {bed_id}")
        self.setStyleSheet(detail_style_sheet(self._colors))
        self.resize(1280, 900)
        self._build()

        feed.transition.connect(self._on_transition)
        self._live_timer = QTimer(self)
        self._live_timer.setObjectName("bedDetailLive")
        self._live_timer.setInterval(LIVE_REFRESH_MS)
        self._live_timer.timeout.connect(self._poll_live)
        self.refresh_state()
        self.show_window(self._window)
        self._build_timer.start()

    # -- building --------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)

        header = QHBoxLayout()
        self.title = QLabel(f"Bed {self.bed_id}", self)
        self.title.setObjectName("bedDetailTitle")
        self.title.setFont(make_font(20, bold=True))
        self.subtitle = QLabel("", self)
        self.subtitle.setFont(make_font(11))
        names = QVBoxLayout()
        names.addWidget(self.title)
        names.addWidget(self.subtitle)
        header.addLayout(names, 1)
        self.news2_label = QLabel("NEWS2 —", self)
        self.news2_label.setObjectName("bedDetailNews2")
        self.news2_label.setFont(make_font(16, bold=True))
        self.news2_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.news2_label.setMinimumWidth(220)
        header.addWidget(self.news2_label)
        layout.addLayout(header)

        self.alarm_label = QLabel("", self)
        self.alarm_label.setObjectName("bedDetailAlarm")
        self.alarm_label.setFont(make_font(13, bold=True))
        self.alarm_label.setWordWrap(True)
        self.alarm_label.setMargin(6)
        layout.addWidget(self.alarm_label)

        numbers = QHBoxLayout()
        numbers.setSpacing(8)
        self.latest_labels: dict[str, QLabel] = {}
        self._headline_boxes: list[tuple[QFrame, QLabel, QLabel]] = []
        for name, _vitals in HEADLINE:
            box = QFrame(self)
            box.setFrameShape(QFrame.Shape.StyledPanel)
            inner = QVBoxLayout(box)
            inner.setContentsMargins(10, 4, 10, 4)
            caption = QLabel(name, box)
            caption.setFont(make_font(10))
            value = QLabel("--", box)
            value.setFont(make_font(22, bold=True))
            self._headline_boxes.append((box, caption, value))
            inner.addWidget(caption)
            inner.addWidget(value)
            numbers.addWidget(box, 1)
            self.latest_labels[name] = value
        layout.addLayout(numbers)

        self.tabs = QTabWidget(self)
        self.tabs.setFont(make_font(11))
        layout.addWidget(self.tabs, 1)
        self.tabs.addTab(self._build_trends(), "Trends")
        self.readings = ReadingsPanel(self)
        self.readings.older_requested.connect(self._load_older)
        self.tabs.addTab(self.readings, "Readings")
        self.trail = TrailPanel(self._colors, self)
        self.tabs.addTab(self.trail, "Alarms && escalation")
        self.limits = LimitsPanel(self._colors, self)
        self.limits.apply_requested.connect(self._apply_limits)
        self.limits.restore_requested.connect(self._restore_limits)
        self.tabs.addTab(self.limits, "Limits")
        self.observations = ObservationsPanel(self)
        self.observations.submitted.connect(self._save_observations)
        self.tabs.addTab(self.observations, "Observations")

        self.status = QLabel("", self)
        self.status.setObjectName("bedDetailStatus")
        layout.addWidget(self.status)
        self._style_header()

    def _style_header(self) -> None:
        """The colours of the labels and boxes styled one by one (the rest follows the
        window's style sheet)."""
        c = self._colors
        self.subtitle.setStyleSheet(f"color: {c.muted_text};")
        self.status.setStyleSheet(f"color: {c.muted_text};")
        for box, caption, value in self._headline_boxes:
            box.setStyleSheet(
                f"QFrame {{ background: {c.surface}; border: 1px solid {c.surface_border};"
                " border-radius: 4px; }"
            )
            caption.setStyleSheet(f"color: {c.muted_text}; border: none;")
            value.setStyleSheet(f"color: {c.text}; border: none;")

    def set_theme(self, theme: str) -> None:
        """Day or night colours, when the station window switches: the window, its plots and
        panels are restyled, and the header, trends, alarm marks and trail loaded again so that
        each is drawn in the new palette."""
        if theme == self._theme:
            return
        self._theme = theme
        self._colors = c = palette_for(theme)
        self.setStyleSheet(detail_style_sheet(c))
        self._style_header()
        self.trail.set_colors(c)
        self.limits.set_colors(c)
        self.plots_widget.setBackground(c.surface)
        for group in TREND_GROUPS:
            plot = self.plots.get(group.title)
            if plot is not None:
                self._style_plot(plot, group)
        for vital, series in self._series.items():
            series.curve.setPen(self._trend_pen(vital))
        self.refresh_state()
        self.show_window(self._window)

    def _build_trends(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 6, 0, 0)
        bar = QHBoxLayout()
        self.window_buttons = QButtonGroup(page)
        self.window_buttons.setExclusive(True)
        self._button_of: dict[TrendWindow, QPushButton] = {}
        for window in TrendWindow:
            button = QPushButton(window.label, page)
            button.setCheckable(True)
            button.setMinimumWidth(64)
            button.clicked.connect(lambda _=False, w=window: self.show_window(w))
            self.window_buttons.addButton(button)
            bar.addWidget(button)
            self._button_of[window] = button
        self.trend_status = QLabel("", page)
        bar.addSpacing(12)
        bar.addWidget(self.trend_status, 1)
        layout.addLayout(bar)

        self.plots_widget = pg.GraphicsLayoutWidget(page)
        self.plots_widget.setBackground(self._colors.surface)
        self.plots: dict[str, pg.PlotItem] = {}
        # A pyqtgraph plot costs tens of milliseconds to build: one per event-loop turn, so
        # that opening the window never freezes the station (the banner keeps flashing).
        self._groups_to_build = list(TREND_GROUPS)
        self._build_timer = QTimer(self)
        self._build_timer.setObjectName("bedDetailBuildPlots")
        self._build_timer.setSingleShot(True)
        self._build_timer.setInterval(0)
        self._build_timer.timeout.connect(self._build_next_plot)
        self.plots_widget.setVisible(False)  # no relayout and repaint per plot built
        layout.addWidget(self.plots_widget, 1)
        return page

    @property
    def plots_ready(self) -> bool:
        """True once every trend plot is built and shown."""
        return not self._groups_to_build and self.plots_widget.isVisibleTo(self)

    def _build_next_plot(self) -> None:
        group = self._groups_to_build.pop(0)
        row = len(self.plots)
        menus_before = set(QApplication.topLevelWidgets())
        plot = self.plots_widget.addPlot(
            row=row, col=0, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")}
        )
        plot.setMenuEnabled(False)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.getAxis("left").setWidth(78)
        plot.setMouseEnabled(x=True, y=False)
        self._style_plot(plot, group)
        if group is not TREND_GROUPS[-1]:
            plot.getAxis("bottom").setStyle(showValues=False)
        if self.plots:
            plot.setXLink(self.plots[TREND_GROUPS[0].title])
        for vital in group.vitals:
            curve = plot.plot([], [], pen=self._trend_pen(vital), name=vital)
            curve.setClipToView(True)
            self._series[vital] = TrendSeries(curve)
        self.plots[group.title] = plot
        # pyqtgraph's context menus are parentless windows: give them to this window, so that
        # they go when it goes (they are never shown: the menus are disabled).
        for widget in set(QApplication.topLevelWidgets()) - menus_before:
            if isinstance(widget, QMenu):
                widget.setParent(self, widget.windowFlags())
        if self._groups_to_build:
            self._build_timer.start()
            return
        # The first layout and paint of all the plots is the costliest step: a turn of its own.
        QTimer.singleShot(0, self, self._reveal_plots)

    def _style_plot(self, plot: pg.PlotItem, group: TrendGroup) -> None:
        c = self._colors
        for name in ("left", "bottom"):
            plot.getAxis(name).setTextPen(c.text)
            plot.getAxis(name).setPen(c.surface_border)
        plot.setLabel("left", f"{group.title} {group.unit}",
                      **{"color": c.text, "font-size": "11pt", "font-weight": "bold"})

    def _trend_pen(self, vital: str) -> Any:
        """A group's first vital solid, the second (diastolic BP) dashed."""
        group = _GROUP_OF[vital]
        style = Qt.PenStyle.SolidLine if group.vitals[0] == vital else Qt.PenStyle.DashLine
        return pg.mkPen(self._colors.trend, width=2, style=style)

    def _reveal_plots(self) -> None:
        self.plots_widget.setVisible(True)
        self._draw_limit_lines(self._limits)
        if self._trends is not None:
            QTimer.singleShot(0, self, lambda: self._draw_trends(self._trends)
                              if self._trends is not None else None)

    # -- loading ---------------------------------------------------------------------------

    def show_window(self, window: TrendWindow) -> None:
        """Load the trends, readings and trail of ``window`` (off the GUI thread)."""
        self._window = window
        self._button_of[window].setChecked(True)
        self._generation += 1
        generation = self._generation
        self.loading = True
        self.trend_status.setText(f"Loading {window.label}…")
        self.readings.clear()
        history, bed = self._history, self.bed_id
        self._tasks.submit(
            lambda: (generation, history.trends(bed, window, buckets=TREND_BUCKETS)),
            self._on_trends, self._on_load_error,
        )

        def load_range() -> RangeData:
            trends_until = self._runtime.clock()
            scope = history.scope(bed)
            since = trends_until - window.length
            return RangeData(
                generation,
                history.readings_page(scope, since, trends_until, limit=READINGS_PAGE_ROWS),
                history.bed_trail(scope, since, trends_until),
            )

        self._tasks.submit(load_range, self._on_range, self._on_load_error)

    def refresh_state(self) -> None:
        """Reload the header: patient, NEWS2, open alarms, limits, latest values."""
        history, alarms, bed, clock = self._history, self._runtime.alarms, self.bed_id, \
            self._runtime.clock

        def load() -> BedState:
            scope = history.scope(bed)
            patient = scope.patient_id
            limits = None
            if patient is not None:
                limits = PatientLimits(
                    patient,
                    {v: lim for v in LIMIT_VITALS
                     if (lim := alarms.limits_for(patient, v)) is not None},
                    {o.limits.kind.value: o for o in alarms.overrides(patient)},
                )
            return BedState(
                scope=scope,
                news2=None if patient is None else alarms.news2(patient),
                alarms=alarms.active_alarms(bed_label=bed),
                limits=limits,
                latest=history.latest(scope, clock() - LATEST_WITHIN),
            )

        self._tasks.submit(load, self._on_state, self._on_load_error)

    def _on_trends(self, loaded: tuple[int, BedTrends]) -> None:
        generation, trends = loaded
        if generation != self._generation:
            return  # another range was asked for meanwhile
        self._trends = trends
        self._scope = trends.scope
        self._tail_after = trends.until
        if self.plots_ready:
            self._draw_trends(trends)

    def _draw_trends(self, trends: BedTrends) -> None:
        width = (trends.until - trends.since).total_seconds() / TREND_BUCKETS
        for vital, series in self._series.items():
            buckets = trends.trends.get(vital)
            if buckets is None:
                series.set_buckets([], [], [], width)
            else:
                series.set_buckets(buckets.times, buckets.minimums, buckets.maximums, width)
        self._draw_markers(trends.markers, trends.until)
        self._set_y_ranges()
        self._set_x_range(trends.since, trends.until)
        self.loading = False
        self.trend_status.setText(
            f"{trends.record_count:,} readings in the last {trends.window.label}, "
            f"{len(trends.markers)} alarms marked · to {local_time(trends.until)}"
        )
        if not self._live_timer.isActive() and self.isVisible():
            self._live_timer.start()
        self.trends_loaded.emit()

    def _on_range(self, data: RangeData) -> None:
        if data.generation != self._generation:
            return
        self.readings.append_page(data.readings, page_size=READINGS_PAGE_ROWS)
        self.trail.show_events(data.trail)

    def _on_state(self, state: BedState) -> None:
        scope = state.scope
        self._scope = self._scope or scope
        if scope.patient_id is None:
            self.title.setText(f"Bed {self.bed_id} · empty")
            self.subtitle.setText("No patient admitted")
        else:
            self.title.setText(f"Bed {self.bed_id} · {scope.patient_name}")
            admitted = local_time(scope.admitted_at, date=True, seconds=False)
            self.subtitle.setText(f"Patient {scope.patient_id} · admitted {admitted}")
        self.setWindowTitle(self.title.text())
        self._show_news2(state.news2)
        self._show_alarms(state.alarms)
        self._limits = state.limits
        self.limits.show_limits(state.limits)
        if self.plots_ready:
            self._draw_limit_lines(state.limits)
        self._show_latest(state.latest)

    def _on_load_error(self, error: BaseException) -> None:
        self.loading = False
        self.trend_status.setText(f"Could not load: {error}")

    def _load_older(self) -> None:
        if self._scope is None or self.readings.oldest is None or self._trends is None:
            return
        history, scope, before = self._history, self._scope, self.readings.oldest
        since, until = self._trends.since, self._trends.until
        generation = self._generation
        self._tasks.submit(
            lambda: RangeData(generation, history.readings_page(
                scope, since, until, before=before, limit=READINGS_PAGE_ROWS), []),
            lambda data: self.readings.append_page(data.readings, page_size=READINGS_PAGE_ROWS)
            if data.generation == self._generation else None,
            self._on_load_error,
        )

    # -- live ------------------------------------------------------------------------------

    def _poll_live(self) -> None:
        if (self._polling or self._scope is None or self._tail_after is None or self.loading
                or not self.plots_ready):
            return
        self._polling = True
        history, scope, after = self._history, self._scope, self._tail_after
        generation = self._generation
        self._tasks.submit(
            lambda: (generation, history.newer_records(scope, after)),
            self._on_live, self._on_live_error,
        )

    def _on_live(self, loaded: tuple[int, list[RecordRow]]) -> None:
        self._polling = False
        generation, records = loaded
        if generation != self._generation or not records:
            return
        by_vital: dict[str, tuple[list[float], list[float]]] = {}
        for record in records:
            times, values = by_vital.setdefault(record.vital, ([], []))
            times.append(record.measured_at.timestamp())
            values.append(record.value)
        for vital, (times, values) in by_vital.items():
            series = self._series.get(vital)
            if series is not None:
                series.append(times, values)
        self._tail_after = records[-1].measured_at
        self._show_latest({r.vital: r for r in records}, merge=True)
        self.readings.prepend_live(records)
        now = self._runtime.clock()
        self._set_x_range(now - self._window.length, now)

    def _on_live_error(self, error: BaseException) -> None:
        self._polling = False
        self.status.setText(f"Live update failed (retrying): {error}")

    def _on_transition(self, transition: AlarmTransition) -> None:
        alarm = transition.alarm
        if alarm.bed_label != self.bed_id:
            return
        self.trail.prepend(transition.at, alarm.priority.value, alarm.message, transition.event,
                           transition.actor, transition.origin, dict(transition.details))
        if (transition.kind is TransitionKind.RAISED and alarm.alarm_id is not None
                and self.plots_ready):
            marker = AlarmMarker(
                alarm.alarm_id, alarm.priority.value, alarm.state.value, alarm.kind.value,
                alarm.condition, None if alarm.vital is None else alarm.vital.value,
                alarm.message, alarm.raised_at, None,
            )
            self._add_marker(marker, self._runtime.clock())
        self.refresh_state()

    # -- drawing ---------------------------------------------------------------------------

    def _set_x_range(self, since: datetime, until: datetime) -> None:
        first = self.plots[TREND_GROUPS[0].title]
        first.setXRange(since.timestamp(), until.timestamp(), padding=0.01)

    def _set_y_ranges(self) -> None:
        """Each plot's usual range, widened to whatever the data reaches."""
        for group in TREND_GROUPS:
            low, high = group.y_range
            for vital in group.vitals:
                y = self._series[vital].y
                if y.size and np.isfinite(y).any():
                    low = min(low, float(np.nanmin(y)))
                    high = max(high, float(np.nanmax(y)))
            self.plots[group.title].setYRange(low, high, padding=0.04)

    def _draw_markers(self, markers: list[AlarmMarker], until: datetime) -> None:
        for plot, item in self._overlays:
            plot.removeItem(item)
        self._overlays = []
        for marker in markers:
            self._add_marker(marker, until)

    def _add_marker(self, marker: AlarmMarker, until: datetime) -> None:
        colour = QColor(self._colors.alarm_color(Priority(marker.priority)))
        group = _GROUP_OF.get(marker.vital or "")
        # An alarm of no one vital (NEWS2, technical) is marked on the top plot only: across
        # every plot its lines would hide the curves.
        targets = [self.plots[(group or TREND_GROUPS[0]).title]]
        start = marker.raised_at.timestamp()
        end = (marker.resolved_at or until).timestamp()
        for plot in targets:
            line = pg.InfiniteLine(pos=start, angle=90, pen=pg.mkPen(colour, width=2),
                                   label=Priority(marker.priority).marker,
                                   labelOpts={"position": 0.92, "color": colour})
            items: list[Any] = [line]
            if group is not None:  # a vital's alarm shades its plot while it lasted
                shade = QColor(colour)
                shade.setAlpha(45)
                region = pg.LinearRegionItem(
                    (start, max(end, start + 1)), movable=False, brush=pg.mkBrush(shade),
                    pen=pg.mkPen(None),
                )
                region.setZValue(-10)
                items.append(region)
            for item in items:
                plot.addItem(item, ignoreBounds=True)
                self._overlays.append((plot, item))

    def _draw_limit_lines(self, limits: PatientLimits | None) -> None:
        for plot, item in self._limit_lines:
            plot.removeItem(item)
        self._limit_lines = []
        if limits is None:
            return
        for vital, vital_limits in limits.limits.items():
            group = _GROUP_OF.get(vital)
            if group is None:
                continue
            plot = self.plots[group.title]
            for limit in vital_limits.limits:
                colour = QColor(self._colors.alarm_color(limit.priority))
                line = pg.InfiniteLine(
                    pos=limit.value, angle=0,
                    pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine),
                )
                plot.addItem(line, ignoreBounds=True)
                self._limit_lines.append((plot, line))

    def _show_latest(self, latest: dict[str, RecordRow], *, merge: bool = False) -> None:
        for name, vitals in HEADLINE:
            records = [latest.get(v) for v in vitals]
            if not any(records):
                if not merge:
                    self.latest_labels[name].setText("--")
                continue
            if name == "BP":
                text = "/".join(format_value(r.value) if r else "--" for r in records)
                unit = "mmHg"
            else:
                record = records[0]
                assert record is not None
                text = format_value(record.value)
                unit = unit_text(record.unit)
            manual = any(r is not None and r.data_source == "manual" for r in records)
            self.latest_labels[name].setText(
                f"{text} <span style='font-size:11pt; font-weight:normal'>{unit}"
                f"{' (manual)' if manual else ''}</span>"
            )

    def _show_news2(self, news2: News2Result | None) -> None:
        self.observations.show_news2(news2_summary(news2))
        c = self._colors
        if news2 is None:
            self.news2_label.setText("NEWS2 —")
            self.news2_label.setToolTip("No observations yet")
            self.news2_label.setStyleSheet(f"color: {c.muted_text};")
            return
        if not news2.complete:
            missing = ", ".join(p.value for p in (*news2.missing, *news2.stale))
            self.news2_label.setText(f"NEWS2 ≥ {news2.minimum_total}\nincomplete")
            self.news2_label.setToolTip(f"Missing or out of date: {missing}")
            self.news2_label.setStyleSheet(
                f"color: {c.text}; border: 2px dashed {c.muted_text}; padding: 4px;"
            )
            return
        risk = news2.risk
        level = {Risk.HIGH: Priority.HIGH, Risk.MEDIUM: Priority.MEDIUM,
                 Risk.LOW_MEDIUM: Priority.LOW}.get(risk) if risk is not None else None
        assumed = " (assumed " + ", ".join(p.value for p in news2.assumed) + ")" \
            if news2.assumed else ""
        self.news2_label.setText(f"NEWS2 {news2.total}\n{risk.value if risk else ''} risk")
        self.news2_label.setToolTip(f"Scores: {dict(news2.scores)}{assumed}")
        if level is None:
            self.news2_label.setStyleSheet(f"color: {c.text}; padding: 4px;")
        else:
            self.news2_label.setStyleSheet(
                f"background: {c.alarm_color(level)}; color: {c.on_alarm_color(level)};"
                " border-radius: 4px; padding: 4px;"
            )

    def _show_alarms(self, alarms: list[Alarm]) -> None:
        c = self._colors
        if not alarms:
            self.alarm_label.setText("No active alarm")
            self.alarm_label.setStyleSheet(f"color: {c.ok};")
            return
        top = alarms[0]
        more = f"   (+{len(alarms) - 1} more)" if len(alarms) > 1 else ""
        state = "" if top.state.value == "active" else f" · {top.state.value.replace('_', ' ')}"
        self.alarm_label.setText(
            f"{priority_text(top.priority)} · {top.message}{state}"
            f" · since {local_time(top.raised_at)}{more}"
        )
        self.alarm_label.setStyleSheet(
            f"background: {c.alarm_color(top.priority)}; color: {c.on_alarm_color(top.priority)};"
            " border-radius: 4px;"
        )

    # -- actions ---------------------------------------------------------------------------

    def _apply_limits(self, vital: str, limits: tuple, reason: str) -> None:
        patient = None if self._limits is None else self._limits.patient_id
        if patient is None:
            self.limits.applied("Not done: no patient in this bed.")
            return
        alarms, actor, origin = self._runtime.alarms, operator_name(), self._origin
        self._run(
            lambda: alarms.set_limit_override(patient, vital, limits, author=actor,
                                              reason=reason, origin=origin),
            lambda _override: (self.limits.applied(
                f"Saved: new limits for {vital.replace('_', ' ')} by {actor}."),
                self.refresh_state()),
            lambda error: self.limits.applied(f"Not done: {error}"),
        )

    def _restore_limits(self, vital: str, reason: str) -> None:
        patient = None if self._limits is None else self._limits.patient_id
        if patient is None:
            self.limits.applied("Not done: no patient in this bed.")
            return
        alarms, actor, origin = self._runtime.alarms, operator_name(), self._origin
        self._run(
            lambda: alarms.remove_limit_override(patient, vital, actor=actor, reason=reason,
                                                 origin=origin),
            lambda _removed: (self.limits.applied(
                f"Saved: {vital.replace('_', ' ')} back to the ward profile, by {actor}."),
                self.refresh_state()),
            lambda error: self.limits.applied(f"Not done: {error}"),
        )

    def _save_observations(self, entry: ObservationEntry) -> None:
        service, bed, actor = self._observations, self.bed_id, operator_name()

        def save() -> str:
            parts = []
            if entry.vitals:
                measured = self._runtime.clock() - timedelta(minutes=entry.minutes_ago)
                service.enter_vitals(bed, entry.vitals, actor=actor, measured_at=measured)
                parts.append(f"{len(entry.vitals)} manual values")
            if entry.consciousness is not None or entry.on_oxygen is not None:
                service.enter_news2(bed, actor=actor, consciousness=entry.consciousness,
                                    on_oxygen=entry.on_oxygen)
                parts.append("NEWS2 observations")
            return f"Saved {' and '.join(parts)} by {actor} at {local_time(self._runtime.clock())}."

        self._run(
            save,
            lambda text: (self.observations.saved(text, ok=True), self.refresh_state(),
                          self._poll_live()),
            lambda error: self.observations.saved(f"Not saved: {error}", ok=False),
        )

    def _run(self, fn: Callable[[], Any], on_done: Callable[[Any], Any],
             on_error: Callable[[BaseException], Any]) -> None:
        def failed(error: BaseException) -> None:
            if isinstance(error, UserError | AlarmActionError | ValueError):
                on_error(error)
            else:
                on_error(RuntimeError(f"{type(error).__name__}: {error}"))

        self._tasks.submit(fn, on_done, failed)

    # -- Qt --------------------------------------------------------------------------------

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._trends is not None and not self._live_timer.isActive():
            self._live_timer.start()

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._live_timer.stop()
        super().hideEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._live_timer.stop()
        self._build_timer.stop()
        super().closeEvent(event)


def news2_summary(news2: News2Result | None) -> str:
    """One line for the observations form: the score and what it lacks."""
    if news2 is None:
        return "no observation yet"
    names = {"respiration_rate": "resp. rate", "spo2": "SpO₂", "air_or_oxygen": "air/oxygen",
             "systolic_bp": "BP systolic", "pulse": "pulse", "consciousness": "consciousness",
             "temperature": "temperature"}

    def listed(parameters: Sequence[Any]) -> str:
        return ", ".join(names.get(p.value, p.value) for p in parameters)

    head = (f"{news2.total} ({news2.risk.value} risk)" if news2.complete and news2.risk
            else f"at least {news2.minimum_total}, incomplete")
    lacks = [f"{label}: {listed(group)}" for label, group in (
        ("missing", news2.missing), ("out of date", news2.stale), ("assumed", news2.assumed),
    ) if group]
    return head + (" · " + " · ".join(lacks) if lacks else "")
