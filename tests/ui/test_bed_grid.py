"""The live ward on the grid: tiles from the register, numerics from pipeline events at frame
rate, alarm colours from the engine, stale marking when the cadence lapses (fake clock)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest

from tests.factories import make_reading
from tests.ui.support import NOW, running_station
from vitalstation.alarms import Priority
from vitalstation.domain.clock import FakeClock
from vitalstation.ui.alarm_feed import AlarmFeed
from vitalstation.ui.alarm_state import ActiveAlarms
from vitalstation.ui.bed_grid import BedGrid
from vitalstation.ui.bed_tile import format_age
from vitalstation.ui.live_model import LiveBuffer, TrendBuffer, WardModel, device_tile_key
from vitalstation.ui.tasks import BackgroundTasks
from vitalstation.ui.theme import palette_for


@contextmanager
def live_grid(qtbot, home, clock):
    with running_station(home, clock=clock) as runtime:
        tasks = BackgroundTasks()
        feed = AlarmFeed(runtime)
        alarms = ActiveAlarms(feed, tasks)
        ward = WardModel(runtime, tasks)
        grid = BedGrid(ward, alarms, palette_for("day"))
        qtbot.addWidget(grid)
        grid.resize(1000, 700)
        grid.show()
        try:
            with qtbot.waitSignal(ward.loaded, timeout=5000):
                ward.attach()
                alarms.load()
            # Tiles are built a few milliseconds' worth per turn of the event loop.
            qtbot.waitUntil(lambda: not grid.is_building and len(grid.tiles) == len(ward.tiles()),
                            timeout=5000)
            yield runtime, ward, grid
        finally:
            ward.stop()
            feed.close()
            tasks.shutdown()
            for obj in (ward, alarms, feed, tasks):
                obj.deleteLater()


def test_tiles_show_beds_empty_beds_and_unassigned_devices(qtbot, tmp_path):
    with live_grid(qtbot, tmp_path / "home", FakeClock(NOW)) as (_runtime, _ward, grid):
        assert list(grid.tiles) == ["1", "2", "3", "4", device_tile_key("SPARE")]
        assert grid.tiles["1"].patient_label.text() == "Ada Lovelace (P1)"
        assert grid.tiles["4"].status_label.text() == "Empty bed"
        assert grid.tiles["4"].property("empty") == "true"
        spare = grid.tiles[device_tile_key("SPARE")]
        assert (spare.bed_label.text(), spare.patient_label.text()) == (
            "SPARE", "not assigned to a bed")


def test_tiles_update_from_pipeline_events(qtbot, tmp_path):
    with live_grid(qtbot, tmp_path / "home", FakeClock(NOW)) as (runtime, ward, grid):
        runtime.pipeline.process([
            make_reading("DEV1", NOW, heart_rate=72.0, oxygen_saturation=97.0,
                         blood_pressure_systolic=121.0, blood_pressure_diastolic=79.0,
                         temperature=36.85, respiratory_rate=16.0, battery=81.0, signal=92.0),
        ])
        tile = grid.tiles["1"]
        qtbot.waitUntil(lambda: tile.cells["hr"].value.text() == "72", timeout=3000)
        assert [tile.cells[k].value.text() for k in ("spo2", "bp", "temp", "rr")] == [
            "97", "121/79", "36.9", "16"]
        assert tile.cells["temp"].unit.text() == "°C"
        assert tile.marks_label.text() == "MQTT · bat 81% · sig 92"
        assert grid.tiles["2"].cells["hr"].value.text() == "--"
        # Fifty readings at once: the tile is refreshed once or twice, not fifty times (all
        # within limits, so no alarm change refreshes it on top of the frames).
        shown = []
        original = tile.show_state
        tile.show_state = lambda *args: (shown.append(1), original(*args))
        runtime.pipeline.process(
            [make_reading("DEV1", NOW + timedelta(seconds=s), heart_rate=60.0 + s / 2)
             for s in range(1, 51)]
        )
        qtbot.waitUntil(lambda: tile.cells["hr"].value.text() == "85", timeout=3000)
        assert 1 <= len(shown) <= 2
        assert len(ward.tile("1").trend) == 51


def test_an_alarm_colours_its_numeric_and_its_tile_and_names_its_priority(qtbot, tmp_path):
    with live_grid(qtbot, tmp_path / "home", FakeClock(NOW)) as (runtime, _ward, grid):
        runtime.pipeline.process([make_reading("DEV2", NOW, heart_rate=165.0)])
        tile = grid.tiles["2"]
        qtbot.waitUntil(lambda: tile.property("alarm") == "high", timeout=3000)
        hr = tile.cells["hr"]
        assert hr.property("alarm") == "high"
        assert hr.caption.text() == "HR ***"  # colour is never the only cue
        assert grid.tiles["1"].property("alarm") == "none"
        alarm = runtime.alarms.active_alarms(bed_label="2")[0]
        assert alarm.priority is Priority.HIGH
        runtime.alarms.acknowledge(alarm.key, actor="nurse", origin="station:test")
        qtbot.waitUntil(lambda: hr.property("alarm") == "high-ack", timeout=3000)


def test_values_grey_with_their_age_when_the_cadence_lapses(qtbot, tmp_path):
    clock = FakeClock(NOW)
    with live_grid(qtbot, tmp_path / "home", clock) as (runtime, ward, grid):
        runtime.pipeline.process(
            [make_reading("DEV1", NOW + timedelta(seconds=s), heart_rate=80.0,
                          received_at=NOW + timedelta(seconds=s)) for s in range(5)])
        clock.advance(4)
        tile = grid.tiles["1"]
        qtbot.waitUntil(lambda: tile.cells["hr"].value.text() == "80", timeout=3000)
        assert tile.cells["hr"].value.property("stale") == "false"
        def checked() -> None:
            ward._on_stale_check()  # the once-a-second check, now; shown within 250 ms
            qtbot.waitUntil(lambda: "1" not in grid._numerics_dirty, timeout=2000)

        clock.advance(4)  # 4 s after the last 1-per-second value: still within 5 s
        checked()
        assert tile.cells["hr"].value.property("stale") == "false"
        clock.advance(131)  # 2:15 after the last value
        checked()
        assert tile.cells["hr"].value.property("stale") == "true"
        assert tile.status_label.text() == "No data · 2:15 ago"
        assert tile.cells["hr"].value.text() == "80"  # still shown, greyed, with its age


def test_live_buffer_is_bounded_and_counts_what_it_sheds():
    from vitalstation.pipeline.types import Attribution, Outcome, ReadingResult, StoredReading

    buffer = LiveBuffer(max_per_tile=3)
    result = ReadingResult(Outcome.STORED, attribution=Attribution.PATIENT, bed_label="7")
    buffer([StoredReading(make_reading("D", s), result) for s in range(5)])
    unknown = ReadingResult(Outcome.STORED, attribution=Attribution.UNKNOWN_DEVICE)
    buffer([StoredReading(make_reading("X", 0), unknown)])
    pending = buffer.drain()
    assert [r.reading.measured_at.second for r in pending["7"]] == [2, 3, 4]
    assert (buffer.received, buffer.dropped, buffer.unknown_devices) == (6, 2, 1)
    assert buffer.drain() == {}


def test_trend_buffer_keeps_order_window_and_capacity():
    trend = TrendBuffer(capacity=4)
    for t in range(10):
        assert trend.append(float(t), float(t * 10))
    assert not trend.append(5.0, 0.0)  # older than the newest: ignored
    times, values = trend.view()
    assert list(times) == [6.0, 7.0, 8.0, 9.0] and list(values) == [60, 70, 80, 90]
    trend.trim(8.0)
    assert list(trend.view()[0]) == [8.0, 9.0]


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00 ago"), (135, "2:15 ago"),
                                               (3725, "1:02:05 ago")])
def test_format_age(seconds, text):
    assert format_age(seconds) == text
