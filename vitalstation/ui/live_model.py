"""The live ward as the window shows it: beds, their latest values and trends.

Bulk data reaches the GUI by pull (DESIGN.md's thread model). :class:`LiveBuffer` is a
pipeline subscriber: on the pipeline thread it only appends each committed reading to its
tile's bounded deque, under a lock held for the appends (O(1) per reading, never waiting on the
GUI). :class:`WardModel`'s frame timer swaps the whole pending dict out under that lock (Anki's
``_on_closures_pending`` swap) and applies it on the GUI thread, so a tile changes at most once
per frame however many readings arrived. The first state (beds, patients, devices, the last
minutes of readings) is loaded off the GUI thread with :class:`BackgroundTasks`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from vitalstation.alarms import News2Result
from vitalstation.alarms.technical import DEFAULT_NO_DATA_AFTER
from vitalstation.domain.vitals import VitalKind
from vitalstation.pipeline.types import Attribution, StoredReading
from vitalstation.ui.tasks import BackgroundTasks

if TYPE_CHECKING:
    from vitalstation.app.runtime import Runtime
    from vitalstation.storage.registry import BedInfo, DeviceInfo

_LOGGER = logging.getLogger(__name__)

# ~25 frames per second: smooth enough for a trend, cheap enough for 128 tiles on 2 cores.
FRAME_INTERVAL_MS = 40
# Ages and stale marks change by the second; they are re-checked once a second.
STALE_CHECK_INTERVAL_MS = 1000
# The first load's recent readings are replayed into the tiles this long per turn of the loop.
REPLAY_SLICE_MS = 12
# New beds, admissions and discharges are picked up from the register this often.
REGISTRY_REFRESH_INTERVAL_MS = 15_000
# NEWS2 is read from the alarm engine (off the GUI thread) this often.
NEWS2_REFRESH_INTERVAL_MS = 2_000
# The trend curve's span, and how many points it may hold (1 Hz heart rate: 600 in 10 min).
TREND_WINDOW_S = 10 * 60
TREND_CAPACITY_POINTS = 2048
TREND_VITAL = VitalKind.HEART_RATE
# Pending readings per tile between two frames; beyond this the oldest are shed (counted in
# ``dropped``): only the display drops them, every reading is already stored.
BUFFER_MAX_PER_TILE = 4096
# A vital is stale when nothing came for this many of its usual intervals (at least
# STALE_MIN_S), and at the latest when the no-data alarm's limit passes.
STALE_INTERVALS = 3.0
STALE_MIN_S = 5.0
# Vitals without a no-data limit (spot checks: glucose, weight) stay current this long.
SPOT_CHECK_STALE_S = 4 * 3600.0

DEVICE_TILE_PREFIX = "device:"


def device_tile_key(device_id: str) -> str:
    """The tile key of an unassigned device (bed tiles are keyed by the bed's label)."""
    return DEVICE_TILE_PREFIX + device_id


class LiveBuffer:
    """Pipeline subscriber: committed readings appended to per-tile bounded deques.

    ``__call__`` runs on the pipeline thread; :meth:`drain` on the GUI thread. The lock is held
    only for appends and for swapping the dict, never while the GUI works on the readings.
    """

    def __init__(self, max_per_tile: int = BUFFER_MAX_PER_TILE) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, deque[StoredReading]] = {}
        self._max = max_per_tile
        self._closed = False
        self.received = 0
        self.dropped = 0
        self.unknown_devices = 0

    def __call__(self, stored: Sequence[StoredReading]) -> None:
        """A committed batch (pipeline thread)."""
        if self._closed:
            return
        with self._lock:
            for item in stored:
                key = _tile_key(item)
                if key is None:
                    self.unknown_devices += 1
                    continue
                queue = self._pending.get(key)
                if queue is None:
                    queue = self._pending[key] = deque(maxlen=self._max)
                elif len(queue) == self._max:
                    self.dropped += 1
                queue.append(item)
            self.received += len(stored)

    def drain(self) -> dict[str, deque[StoredReading]]:
        """Everything appended since the last drain, by tile key (GUI thread)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def close(self) -> None:
        """Ignore further batches (the pipeline has no unsubscribe)."""
        self._closed = True


def _tile_key(item: StoredReading) -> str | None:
    result = item.result
    if result.bed_label:
        return result.bed_label
    if result.patient_id:
        return "patient:" + result.patient_id  # resolved to the patient's bed on the GUI thread
    if result.attribution is Attribution.UNASSIGNED:
        return device_tile_key(item.reading.device_id)
    return None


class TrendBuffer:
    """A time-ordered ring of (time, value) in preallocated numpy arrays (pyqtgraph's
    scrollingPlots pattern): O(1) append, views without copies."""

    def __init__(self, capacity: int = TREND_CAPACITY_POINTS) -> None:
        self._t = np.zeros(capacity * 2)
        self._v = np.zeros(capacity * 2)
        self._capacity = capacity
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, t: float, value: float) -> bool:
        """Add a point; False (ignored) when not newer than the last one."""
        if self._end > self._start and t <= self._t[self._end - 1]:
            return False
        if self._end == len(self._t):
            keep = min(self._end - self._start, self._capacity - 1)
            self._t[:keep] = self._t[self._end - keep:self._end]
            self._v[:keep] = self._v[self._end - keep:self._end]
            self._start, self._end = 0, keep
        self._t[self._end] = t
        self._v[self._end] = value
        self._end += 1
        if self._end - self._start > self._capacity:
            self._start = self._end - self._capacity
        return True

    def trim(self, before: float) -> None:
        """Forget points older than ``before`` (a scalar check first: most frames have none)."""
        if self._end > self._start and self._t[self._start] < before:
            self._start += int(np.searchsorted(self._t[self._start:self._end], before))

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """The points, oldest first (views into the buffer: copy before keeping them)."""
        return self._t[self._start:self._end], self._v[self._start:self._end]


@dataclass(slots=True)
class VitalValue:
    """The latest value of one vital in one tile."""

    value: float
    measured_at: datetime
    arrived_at: datetime  # when the station received it (its own clock)
    interval_s: float | None = None  # the usual time between two values, once known

    def stale_after_s(self, kind: VitalKind) -> float:
        """How long this vital may stay silent before it is shown as stale."""
        limit = DEFAULT_NO_DATA_AFTER.get(kind)
        cap = limit.total_seconds() if limit is not None else SPOT_CHECK_STALE_S
        if self.interval_s is None:
            return cap
        return min(cap, max(STALE_MIN_S, STALE_INTERVALS * self.interval_s))

    def is_stale(self, kind: VitalKind, now: datetime) -> bool:
        """True when the vital's cadence lapsed."""
        return (now - self.arrived_at).total_seconds() > self.stale_after_s(kind)


@dataclass(slots=True)
class TileState:
    """One tile: a bed (with its patient and devices) or an unassigned device."""

    key: str
    label: str
    is_device: bool = False
    ward: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    devices: tuple[str, ...] = ()
    values: dict[VitalKind, VitalValue] = field(default_factory=dict)
    device_id: str | None = None  # the device of the latest reading
    input: str | None = None  # the input the latest reading came by
    battery: float | None = None
    signal: float | None = None
    last_arrived_at: datetime | None = None
    news2: News2Result | None = None
    trend: TrendBuffer = field(default_factory=TrendBuffer)
    trend_version: int = 0  # bumped when a trend point is added

    @property
    def is_empty(self) -> bool:
        """A bed with nobody in it and no device reporting."""
        return not self.is_device and self.patient_id is None and not self.values

    def apply(self, kind: VitalKind, value: float, measured_at: datetime,
              arrived_at: datetime) -> None:
        """Take one measured value (newer than what is shown, or ignored)."""
        current = self.values.get(kind)
        if current is not None:
            if measured_at < current.measured_at:
                return  # a backlog value older than the one shown
            interval = (measured_at - current.measured_at).total_seconds()
            known = current.interval_s
            if interval > 0:
                # A smoothed cadence, so that one late value does not mark the next stale.
                known = interval if known is None else 0.8 * known + 0.2 * interval
            self.values[kind] = VitalValue(value, measured_at, arrived_at, known)
        else:
            self.values[kind] = VitalValue(value, measured_at, arrived_at)
        if kind is TREND_VITAL and self.trend.append(measured_at.timestamp(), value):
            self.trend_version += 1

    def note_source(self, device_id: str | None, input_name: str | None,
                    battery: float | None, signal: float | None, arrived_at: datetime) -> None:
        """The device and input the newest reading came from, with its battery and signal."""
        if self.last_arrived_at is not None and arrived_at < self.last_arrived_at:
            return
        self.last_arrived_at = arrived_at
        self.device_id = device_id or self.device_id
        self.input = input_name or self.input
        if battery is not None:
            self.battery = battery
        if signal is not None:
            self.signal = signal

    def stale_vitals(self, now: datetime) -> set[VitalKind]:
        """The vitals whose cadence lapsed."""
        return {kind for kind, v in self.values.items() if v.is_stale(kind, now)}

    def all_stale(self, now: datetime) -> bool:
        """Nothing shown is current (the tile greys and shows the data's age)."""
        return bool(self.values) and len(self.stale_vitals(now)) == len(self.values)


@dataclass(frozen=True, slots=True)
class RecentRecord:
    """One stored vital, as the first load replays it into the tiles."""

    tile_key: str
    vital: VitalKind
    value: float
    measured_at: datetime
    received_at: datetime
    device_id: str | None
    input: str
    battery: float | None
    signal: float | None


@dataclass(frozen=True, slots=True)
class WardSnapshot:
    """What the first load (and each register refresh) reads, off the GUI thread."""

    beds: tuple[BedInfo, ...]
    devices: tuple[DeviceInfo, ...]
    recent: tuple[RecentRecord, ...] = ()


def load_register(runtime: Runtime) -> WardSnapshot:
    """Beds and devices (worker thread: SQL)."""
    registry = runtime.store.registry
    return WardSnapshot(tuple(registry.list_beds()), tuple(registry.list_devices()))


def load_snapshot(runtime: Runtime, window_s: float = TREND_WINDOW_S) -> WardSnapshot:
    """Beds, devices and the last ``window_s`` of readings (worker thread: SQL)."""
    register = load_register(runtime)
    bed_of_patient = {b.patient_id: b.label for b in register.beds if b.patient_id}
    unassigned = {d.device_id for d in register.devices if d.bed is None and d.patient_id is None}
    since = runtime.clock() - timedelta(seconds=window_s)
    recent: list[RecentRecord] = []
    for record in runtime.store.queries.readings(since=since):
        key = record.bed or bed_of_patient.get(record.patient_id or "")
        if key is None and record.device_id in unassigned:
            key = device_tile_key(record.device_id or "")
        if key is None:
            continue
        try:
            vital = VitalKind(record.vital)
        except ValueError:
            continue
        recent.append(RecentRecord(
            key, vital, record.value, record.measured_at, record.received_at,
            record.device_id, record.input, record.battery_level, record.signal_quality,
        ))
    return WardSnapshot(register.beds, register.devices, tuple(recent))


class WardModel(QObject):
    """Every tile's state, fed at frame rate from the pipeline (GUI thread).

    ``tiles_changed`` when beds or unassigned devices appear, go or change occupant (the grid
    rebuilds); ``frame`` with the keys of the tiles whose data changed in that frame.
    """

    tiles_changed = Signal()
    frame = Signal(object)  # set[str] of tile keys (empty: a frame with nothing new)
    loaded = Signal()

    def __init__(self, runtime: Runtime, tasks: BackgroundTasks,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runtime = runtime
        self._tasks = tasks
        self.buffer = LiveBuffer()
        self._tiles: dict[str, TileState] = {}
        self._bed_of_patient: dict[str, str] = {}
        self.is_loaded = False
        self._attached = False
        self._frame_timer = self._timer("ward-frame", FRAME_INTERVAL_MS, self.tick)
        self._stale_timer = self._timer("ward-stale", STALE_CHECK_INTERVAL_MS,
                                        self._on_stale_check)
        self._register_timer = self._timer("ward-register", REGISTRY_REFRESH_INTERVAL_MS,
                                           self.refresh_register)
        self._news2_timer = self._timer("ward-news2", NEWS2_REFRESH_INTERVAL_MS,
                                        self.refresh_news2)
        self._replay_timer = self._timer("ward-replay", 0, self._replay_step)
        self._replay: Iterator[RecentRecord] = iter(())
        self._stale_shown: dict[str, frozenset[VitalKind]] = {}
        self.frames = 0

    def _timer(self, name: str, interval_ms: int, slot: Callable[[], object]) -> QTimer:
        timer = QTimer(self)
        timer.setObjectName(name)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        return timer

    # -- lifecycle -----------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to the (started) runtime's pipeline and load the first state."""
        if self._attached:
            return
        self._attached = True
        self._runtime.pipeline.subscribe(self.buffer)
        self._tasks.submit(lambda: load_snapshot(self._runtime), self._on_snapshot,
                           self._on_load_failed)

    def stop(self) -> None:
        """Stop the timers and ignore the pipeline from now on."""
        for timer in (self._frame_timer, self._stale_timer, self._register_timer,
                      self._news2_timer, self._replay_timer):
            timer.stop()
        self.buffer.close()

    # -- queries ---------------------------------------------------------------------------

    def tiles(self) -> list[TileState]:
        """Beds in label order (numbers numerically), then unassigned devices."""
        return sorted(self._tiles.values(), key=lambda t: (t.is_device, _natural(t.label)))

    def tile(self, key: str) -> TileState | None:
        """One tile by key."""
        return self._tiles.get(key)

    def now(self) -> datetime:
        """The station's clock (injected in tests)."""
        return self._runtime.clock()

    # -- the frame -------------------------------------------------------------------------

    def tick(self) -> set[str]:
        """Apply the readings that arrived since the last frame; emit ``frame``."""
        changed: set[str] = set()
        pending = self.buffer.drain()
        for key, items in pending.items():
            tile = self._resolve(key)
            if tile is None:
                continue
            for item in items:
                reading = item.reading
                for measurement in reading.measurements:
                    tile.apply(measurement.kind, measurement.value, reading.measured_at,
                               reading.received_at)
                tile.note_source(reading.device_id, reading.input.value,
                                 reading.battery_level, reading.signal_quality,
                                 reading.received_at)
            changed.add(tile.key)
        if changed:
            cutoff = self.now().timestamp() - TREND_WINDOW_S
            for key in changed:
                self._tiles[key].trend.trim(cutoff)
        self.frames += 1
        # Every frame, changed or not: views pace their own deferred work (trend redraws) on it.
        self.frame.emit(changed)
        return changed

    def _resolve(self, key: str) -> TileState | None:
        if key.startswith("patient:"):
            bed = self._bed_of_patient.get(key[len("patient:"):])
            return None if bed is None else self._tiles.get(bed)
        tile = self._tiles.get(key)
        if tile is None and self.is_loaded and not key.startswith(DEVICE_TILE_PREFIX):
            # A bed registered since the last refresh: show it now, details follow.
            tile = self._tiles[key] = TileState(key=key, label=key)
            self.tiles_changed.emit()
            self.refresh_register()
        return tile

    def _on_stale_check(self) -> None:
        """Once a second: tiles whose stale marks change, or that show their data's age
        ("No data · 2:15 ago": everything stale). A tile with only some vitals stale is not
        redrawn every second for it (the ages in its tooltips follow its next refresh)."""
        now = self.now()
        changed: set[str] = set()
        for key, tile in self._tiles.items():
            stale = frozenset(tile.stale_vitals(now))
            if stale != self._stale_shown.get(key, frozenset()) or (
                    stale and len(stale) == len(tile.values)):
                changed.add(key)
            self._stale_shown[key] = stale
        if changed:
            self.frame.emit(changed)

    # -- loads (worker thread) and their results (GUI thread) ---------------------------------

    def refresh_register(self) -> None:
        """Re-read beds and devices off the GUI thread (admissions, discharges, new beds)."""
        self._tasks.submit(lambda: load_register(self._runtime), self._apply_register,
                           self._on_load_failed)

    def refresh_news2(self) -> None:
        """Read each patient's NEWS2 from the alarm engine off the GUI thread."""
        service = self._runtime.alarms
        patients = [t.patient_id for t in self._tiles.values() if t.patient_id]

        def read() -> dict[str, News2Result | None]:
            return {pid: service.news2(pid) for pid in patients}

        self._tasks.submit(read, self._on_news2, self._on_load_failed)

    def _on_snapshot(self, snapshot: WardSnapshot) -> None:
        """The first state: the register at once, then the recent readings replayed in slices
        of REPLAY_SLICE_MS per turn of the loop (128 beds' last 10 minutes are ~100,000
        values: one block would freeze the window for a second while it opens)."""
        self._apply_register(snapshot)
        self._replay = iter(snapshot.recent)
        self._replay_timer.start()

    def _replay_step(self) -> None:
        deadline = time.perf_counter() + REPLAY_SLICE_MS / 1000
        for count, record in enumerate(self._replay, start=1):
            tile = self._tiles.get(record.tile_key)
            if tile is not None:
                tile.apply(record.vital, record.value, record.measured_at, record.received_at)
                tile.note_source(record.device_id, record.input, record.battery,
                                 record.signal, record.received_at)
            if count % 256 == 0 and time.perf_counter() >= deadline:
                return  # the timer calls again on the next turn
        self._replay_timer.stop()
        self._replay = iter(())
        self.is_loaded = True
        self._frame_timer.start()
        self._stale_timer.start()
        self._register_timer.start()
        self._news2_timer.start()
        self.refresh_news2()
        self.frame.emit(set(self._tiles))
        self.loaded.emit()

    def _apply_register(self, snapshot: WardSnapshot) -> None:
        before = {k: (t.patient_id, t.devices) for k, t in self._tiles.items()}
        devices_by_bed: dict[str, list[str]] = {}
        for device in snapshot.devices:
            if device.status != "active":
                continue
            if device.bed is not None:
                devices_by_bed.setdefault(device.bed, []).append(device.device_id)
        self._bed_of_patient = {b.patient_id: b.label for b in snapshot.beds if b.patient_id}
        keep: set[str] = set()
        for bed in snapshot.beds:
            tile = self._tiles.get(bed.label) or TileState(key=bed.label, label=bed.label)
            if tile.patient_id != bed.patient_id:
                tile.values.clear()  # the previous patient's values are not this one's
                tile.trend = TrendBuffer()
                tile.news2 = None
            tile.ward, tile.patient_id, tile.patient_name = bed.ward, bed.patient_id, \
                bed.patient_name
            tile.devices = tuple(sorted(devices_by_bed.get(bed.label, ())))
            self._tiles[bed.label] = tile
            keep.add(bed.label)
        for device in _unassigned(snapshot.devices):
            key = device_tile_key(device.device_id)
            tile = self._tiles.get(key) or TileState(
                key=key, label=device.device_id, is_device=True, devices=(device.device_id,)
            )
            if device.battery_level is not None and tile.battery is None:
                tile.battery = device.battery_level
            self._tiles[key] = tile
            keep.add(key)
        for key in set(self._tiles) - keep:
            del self._tiles[key]
        after = {k: (t.patient_id, t.devices) for k, t in self._tiles.items()}
        if after != before:
            self.tiles_changed.emit()

    def _on_news2(self, results: dict[str, News2Result | None]) -> None:
        changed = set()
        for tile in self._tiles.values():
            if tile.patient_id in results and tile.news2 != results[tile.patient_id]:
                tile.news2 = results[tile.patient_id]
                changed.add(tile.key)
        if changed:
            self.frame.emit(changed)

    def _on_load_failed(self, error: BaseException) -> None:
        _LOGGER.error("could not load the ward's state: %s", error, exc_info=error)


def _unassigned(devices: Iterable[DeviceInfo]) -> list[DeviceInfo]:
    return [d for d in devices if d.status == "active" and d.bed is None and d.patient_id is None]


def _natural(label: str) -> tuple:
    """Sort key that puts bed 2 before bed 10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", label) if part)
