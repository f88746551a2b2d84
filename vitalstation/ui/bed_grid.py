"""The bed grid: one tile per bed (then unassigned devices), as many columns as fit, scrolling
beyond one screen.

Refresh budget (PLATFORM.md: the cost is per plot item, not per point): numerics of the tiles
that changed are refreshed at most 4 times a second (text only when it changed; alarm looks at
once); trend curves are redrawn
at most once per TREND_MIN_INTERVAL_MS per tile, at most MAX_TRENDS_PER_FRAME per frame, only
for tiles on screen, so 128 beds at 5,000 readings/s cost a few curves per frame, not 128.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QScrollArea, QWidget

from vitalstation.ui.alarm_state import ActiveAlarms
from vitalstation.ui.bed_tile import BedTile
from vitalstation.ui.live_model import WardModel
from vitalstation.ui.theme import ThemeColors, tile_style_sheet

# A tile's trend spans 10 minutes over ~200-450 px (1-3 s per pixel column): redrawn every 2 s
# it looks the same, at half the cost of every second (the numbers above it are live).
TREND_MIN_INTERVAL_MS = 2000
MAX_TRENDS_PER_FRAME = 8
# Numerics change at most 4 times a second per tile (STYLE.md: 2–4 Hz for numerics); an
# alarm's colour and marker change at once.
NUMERICS_MIN_INTERVAL_MS = 250
MAX_NUMERICS_PER_FRAME = 12
# Building a tile costs a few ms (more on a loaded machine): new tiles are created for at most
# this long per turn of the event loop (at least one), so a 128-bed ward opens without ever
# holding the loop for long.
BUILD_STEP_BUDGET_MS = 12
# Tile sizes per density (logical px): "normal" while the ward fits the screen with them,
# "compact" beyond (64 beds on a 1080p screen), "wall" when asked (big numbers).
TILE_MIN_WIDTH_PX = {"normal": 270, "compact": 200, "wall": 460}
TILE_HEIGHT_PX = {"normal": 196, "compact": 118, "wall": 330}


class BedGrid(QScrollArea):
    """Tiles of :class:`WardModel`, coloured by :class:`ActiveAlarms`; ``bed_activated`` with
    the bed's label (or ``device:<id>``) when a tile is clicked."""

    bed_activated = Signal(str)

    def __init__(self, ward: WardModel, alarms: ActiveAlarms, colors: ThemeColors,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("bedGridArea")
        self.setWidgetResizable(True)
        # Columns are computed to fit; should a tile still be wider, scroll rather than clip.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self._ward = ward
        self._alarms = alarms
        self._colors = colors
        self._container = QWidget()
        self._container.setObjectName("bedGrid")
        self._layout = QGridLayout(self._container)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._layout.setSpacing(6)
        self.setWidget(self._container)
        self.tiles: dict[str, BedTile] = {}
        self._order: list[str] = []
        self._columns = 0
        self._expected = 0  # tiles of the ward, including those still to be built
        self._trends_at_frame = -1
        self._trend_due: dict[str, float] = {}  # key -> monotonic time a redraw may happen
        self._trend_dirty: set[str] = set()
        self._numerics_due: dict[str, float] = {}
        self._numerics_dirty: set[str] = set()
        self._alarm_looks: dict[str, tuple] = {}
        self._build_timer = QTimer(self)
        self._build_timer.setObjectName("grid-build")
        self._build_timer.setSingleShot(True)
        self._build_timer.setInterval(0)
        self._build_timer.timeout.connect(self.rebuild)
        self.wall_mode = False
        self.density = ""
        self.trend_updates = 0
        self.verticalScrollBar().valueChanged.connect(lambda _value: self._on_frame(set()))
        ward.tiles_changed.connect(self.rebuild)
        ward.frame.connect(self._on_frame)
        alarms.changed.connect(self._on_alarms_changed)
        self.rebuild()

    # -- structure -------------------------------------------------------------------------

    @property
    def is_building(self) -> bool:
        """True while tiles of a large ward are still being created (a few per turn)."""
        return self._build_timer.isActive()

    def rebuild(self) -> None:
        """Create, drop and re-place tiles after the ward's beds changed.

        New tiles are built for at most BUILD_STEP_BUDGET_MS per turn of the event loop, so
        that opening a 128-bed ward never freezes the window (and alarms keep coming through
        meanwhile). New tiles are filled at once; the others (a patient admitted, a device
        assigned) are marked due and refreshed over the next frames, a few per frame.
        """
        continuing = self.sender() is self._build_timer  # a build step, not a ward change
        self._build_timer.stop()
        keys = [t.key for t in self._ward.tiles()]
        self._expected = len(keys)
        for key in set(self.tiles) - set(keys):
            tile = self.tiles.pop(key)
            self._layout.removeWidget(tile)
            tile.deleteLater()
            for table in (self._trend_due, self._numerics_due, self._alarm_looks):
                table.pop(key, None)
            self._trend_dirty.discard(key)
            self._numerics_dirty.discard(key)
        missing = [key for key in keys if key not in self.tiles]
        created: set[str] = set()
        deadline = time.perf_counter() + BUILD_STEP_BUDGET_MS / 1000
        for key in missing:
            if created and time.perf_counter() >= deadline:
                break
            tile = BedTile(key, self._colors, self._container)
            tile.set_density(self.density or "normal")
            tile.activated.connect(self.bed_activated)
            self.tiles[key] = tile
            self._trend_dirty.add(key)
            created.add(key)
        previous = self._order
        self._order = [key for key in keys if key in self.tiles]
        self._place(force=True, appended=self._order[len(previous):]
                    if self._order[:len(previous)] == previous else None)
        self._refresh(created, force=True)
        if not continuing:
            for key in set(self._order) - created:
                self._numerics_due[key] = 0.0
            self._numerics_dirty |= set(self._order) - created
        if len(created) < len(missing):
            self._build_timer.start()

    def _choose_density(self, width: int, height: int) -> str:
        if self.wall_mode:
            return "wall"
        # Every tile the ward will have, built or not: a large ward is compact from its first
        # tiles on, rather than re-styling all of them half-way through the build.
        count = max(1, len(self._order), self._expected)
        columns = max(1, width // self._tile_width("normal"))
        rows = -(-count // columns)
        return "normal" if rows * (TILE_HEIGHT_PX["normal"] + 6) <= height else "compact"

    def _tile_width(self, density: str) -> int:
        """A column's width: the density's minimum plus the spacing."""
        return TILE_MIN_WIDTH_PX[density] + self._layout.horizontalSpacing()

    def set_wall_mode(self, on: bool) -> None:
        """Fewer, larger tiles (big numbers for reading at 4 m)."""
        self.wall_mode = on
        self._place(force=True)

    def set_colors(self, colors: ThemeColors) -> None:
        """Theme change."""
        self._colors = colors
        for tile in self.tiles.values():
            tile.set_colors(colors)

    def _place(self, *, force: bool = False, appended: list[str] | None = None) -> None:
        """Lay the tiles out in columns; ``appended``: only these are new, after the others
        in order (a build step), so only they are added when nothing else moves."""
        width = max(1, self.viewport().width() - 12)
        density = self._choose_density(width, max(1, self.viewport().height() - 12))
        if density != self.density:
            self.density = density
            self._container.setStyleSheet(tile_style_sheet(density))
            for tile in self.tiles.values():
                tile.set_density(density)
            force = True
            appended = None
        columns = max(1, min(len(self._order) or 1, width // self._tile_width(density)))
        if not force and columns == self._columns:
            return
        if appended is not None and columns == self._columns:
            first = len(self._order) - len(appended)
            for index, key in enumerate(appended, start=first):
                self._layout.addWidget(self.tiles[key], index // columns, index % columns)
            self._stretch_rows(columns)
            return
        self._columns = columns
        for tile in self.tiles.values():
            self._layout.removeWidget(tile)
        for index, key in enumerate(self._order):
            tile = self.tiles[key]
            tile.set_density(density)
            self._layout.addWidget(tile, index // columns, index % columns)
        for column in range(self._layout.columnCount()):
            self._layout.setColumnStretch(column, 1 if column < columns else 0)
        self._stretch_rows(columns)

    def _stretch_rows(self, columns: int) -> None:
        """Tiles keep their height; the space left stays below the last row."""
        rows = -(-len(self._order) // columns) if self._order else 0
        for row in range(self._layout.rowCount()):
            self._layout.setRowStretch(row, 0)
        self._layout.setRowStretch(rows, 1)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        """Re-flow the columns to the new width."""
        super().resizeEvent(event)
        self._place()

    # -- data ------------------------------------------------------------------------------

    def _on_frame(self, keys: set[str]) -> None:
        self._numerics_dirty |= keys
        self._refresh(self._numerics_dirty)
        # Curves once per frame tick, not again for the stale check's or NEWS2's updates.
        if self._ward.frames != self._trends_at_frame:
            self._trends_at_frame = self._ward.frames
            self._update_trends()

    def _on_alarms_changed(self) -> None:
        """At once, whatever the frame: the tiles whose alarms changed (when many change at
        once, as when the alarms load, MAX_NUMERICS_PER_FRAME now, highest priority first, and
        the rest first in line for the next frames, so the loop is never held for long)."""
        changed = set()
        for key in self.tiles:
            state = self._ward.tile(key)
            if state is None or state.is_device:
                continue
            looks = tuple((a.key, a.state, a.priority) for a in self._alarms.for_bed(state.label))
            if self._alarm_looks.get(key) != looks:
                self._alarm_looks[key] = looks
                changed.add(key)
        if len(changed) > MAX_NUMERICS_PER_FRAME:
            ranked = sorted(changed, key=lambda k: -max(
                (priority.rank for _key, _state, priority in self._alarm_looks[k]), default=0))
            later = set(ranked[MAX_NUMERICS_PER_FRAME:])
            for key in later:
                self._numerics_due[key] = 0.0
            self._numerics_dirty |= later
            changed -= later
        self._refresh(changed, force=True)

    def _refresh(self, keys: set[str], *, force: bool = False) -> None:
        """Numerics of ``keys``; unless ``force``, only those not refreshed in the last
        NUMERICS_MIN_INTERVAL_MS (the rest stay dirty for a later frame)."""
        clock = time.monotonic()
        now = self._ward.now()
        if force:
            due = list(keys)
        else:
            # The longest-waiting first, at most MAX_NUMERICS_PER_FRAME: tiles refreshed
            # together would otherwise stay in step and make every fourth frame a long one.
            # Tiles scrolled out of view wait (still dirty) until they are scrolled back.
            waiting = sorted((k for k in keys if self._numerics_due.get(k, 0.0) <= clock),
                             key=lambda k: self._numerics_due.get(k, 0.0))
            shown = self._shown_rect()
            due = []
            for key in waiting:
                tile = self.tiles.get(key)
                if tile is not None and tile.geometry().intersects(shown):
                    due.append(key)
                    if len(due) == MAX_NUMERICS_PER_FRAME:
                        break
        for key in due:
            self._numerics_dirty.discard(key)
            tile = self.tiles.get(key)
            state = self._ward.tile(key)
            if tile is None or state is None:
                continue
            alarms = [] if state.is_device else self._alarms.for_bed(state.label)
            tile.show_state(state, alarms, now)
            self._numerics_due[key] = clock + NUMERICS_MIN_INTERVAL_MS / 1000
            if state.trend_version != tile.trend_version:
                self._trend_dirty.add(key)

    def _shown_rect(self) -> QRect:
        """The part of the tiles' container on screen (in its coordinates): a tile is on
        screen when its geometry meets it (cheaper than asking each tile's visible region)."""
        if not self.isVisible():
            return QRect()
        return QRect(self.horizontalScrollBar().value(), self.verticalScrollBar().value(),
                     self.viewport().width(), self.viewport().height())

    def _update_trends(self) -> None:
        """Redraw a few due curves of tiles on screen (see the module docstring)."""
        if not self._trend_dirty:
            return
        clock = time.monotonic()
        now = self._ward.now()
        shown = self._shown_rect()
        done = 0
        for key in list(self._trend_dirty):
            if done >= MAX_TRENDS_PER_FRAME:
                break
            if self._trend_due.get(key, 0.0) > clock:
                continue
            tile = self.tiles.get(key)
            state = self._ward.tile(key)
            self._trend_dirty.discard(key)
            if tile is None or state is None or not tile.geometry().intersects(shown):
                if tile is not None and state is not None:
                    self._trend_dirty.add(key)  # drawn when scrolled into view
                    self._trend_due[key] = clock + TREND_MIN_INTERVAL_MS / 1000
                continue
            tile.show_trend(state, now)
            self._trend_due[key] = clock + TREND_MIN_INTERVAL_MS / 1000
            self.trend_updates += 1
            done += 1
